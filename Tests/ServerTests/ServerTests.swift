// The real server on a loopback port, driven by the official OpenAI and Anthropic Python clients
// (installed from PyPI by .ci/run) and by raw HTTP for the error cases.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import Engine
import Server

let serverFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// Real models (fetched once per machine) and the Python clients. Tests that need one are enabled only
/// when it is there, and Swift Testing reports them as skipped with the reason; tests of errors that need
/// no real model run on the tiny fixture model instead.
enum TestModels {
    nonisolated(unsafe) static var loaded: [String: LoadedModel] = [:]
    nonisolated(unsafe) static var missing: Set<String> = []
    static let lock = NSLock()
    static func load(_ name: String) -> LoadedModel? {
        lock.lock(); defer { lock.unlock() }
        if let m = loaded[name] { return m }
        if missing.contains(name) { return nil }
        guard let path = try? ModelStore.resolveOrPull(name), let m = try? LoadedModel(path: path) else {
            FileHandle.standardError.write(Data("!! SKIPPING server tests that need the real model '\(name)': it could not be fetched\n".utf8))
            missing.insert(name)
            return nil
        }
        loaded[name] = m
        return m
    }

    static func available(_ name: String) -> Bool { load(name) != nil }

    /// The tiny random-weight qwen2 fixture (512-token SmolLM-style vocabulary, no chat template).
    static let tiny: LoadedModel = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ModelsTests/Fixtures/qwen2.f32.gguf").path
        return try! LoadedModel(path: path)
    }()

    /// Debian's chromium and chromium-driver, and Selenium, for the chat page test.
    static let headlessChromium: Bool = {
        let paths = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import selenium"]
        p.standardError = FileHandle.nullDevice
        let selenium = (try? p.run()) != nil && { p.waitUntilExit(); return p.terminationStatus == 0 }()
        let present = paths.allSatisfy { FileManager.default.isExecutableFile(atPath: $0) } && selenium
        if !present {
            FileHandle.standardError.write(Data("!! SKIPPING the chat page test: needs /usr/bin/chromium, /usr/bin/chromedriver (apt install chromium chromium-driver) and python3 selenium\n".utf8))
        }
        return present
    }()

    static let pythonClients: Bool = {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import openai, anthropic, httpx, jsonschema, pydantic"]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            FileHandle.standardError.write(Data("!! SKIPPING client tests: python3 lacks openai/anthropic/httpx/jsonschema/pydantic (pip install openai anthropic httpx jsonschema pydantic)\n".utf8))
        }
        return p.terminationStatus == 0
    }()
}

/// A server running in this process on a free loopback port.
struct RunningServer {
    let server: APIServer
    let port: Int
    let task: Task<Void, Error>
    var base: String { "http://127.0.0.1:\(port)" }

    static func start(_ engine: BatchEngine, configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> RunningServer {
        var config = ServerConfiguration(modelID: "smollm2")
        config.port = 0
        configure(&config)
        let server = APIServer(engine: engine, configuration: config)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task { try await server.run { continuation.yield($0) } }
        for await port in ports { return RunningServer(server: server, port: port, task: task) }
        throw CancellationError()
    }

    func stop() {
        task.cancel()
        server.engine.shutdown()
    }
}

struct HTTPResult {
    let status: Int
    let headers: [String: String]
    let body: Data
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
}

func http(_ method: String, _ url: String, body: Data? = nil, headers: [String: String] = [:]) async throws -> HTTPResult {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.httpBody = body
    request.timeoutInterval = 120
    for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
    if body != nil, headers["Content-Type"] == nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
    let (data, response) = try await URLSession.shared.data(for: request)
    let r = response as! HTTPURLResponse
    var fields: [String: String] = [:]
    for (k, v) in r.allHeaderFields { fields[String(describing: k).lowercased()] = String(describing: v) }
    return HTTPResult(status: r.statusCode, headers: fields, body: data)
}

/// Runs a Python client script from Fixtures/ against a server; its exit status and output.
func runClientScript(_ script: String, _ arguments: String...) async throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", serverFixtures.appendingPathComponent(script).path] + arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let output = await offThePool { String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
    p.waitUntilExit()
    return (p.terminationStatus, output)
}

/// Runs a client script against a server of the real SmolLM2 (context 2048) with `parallel` sequences.
func runClientScriptOnSmolLM2(_ script: String, parallel: Int) async throws -> (Int32, String) {
    let loaded = try #require(TestModels.load("smollm2"))
    let engine = BatchEngine(loaded, parallel: parallel, contextLength: 2048, maxBatch: 512, prefillChunk: 256, threads: 2)
    let running = try await RunningServer.start(engine)
    defer { running.stop() }
    return try await runClientScript(script, running.base, "smollm2")
}

@Suite(.serialized)
struct ServerTests {
    @Test(.enabled(if: TestModels.available("smollm2"), "needs the real model smollm2"),
          .enabled(if: TestModels.pythonClients, "needs python3 with openai, anthropic, httpx, jsonschema, pydantic"))
    func officialClientsAgainstTheServer() async throws {
        let (status, output) = try await runClientScriptOnSmolLM2("clients.py", parallel: 16)
        #expect(status == 0, "client checks failed:\n\(output)")
        #expect(output.contains("all client checks passed"))
    }

    /// A prompt prefilled in several chunks: the stream says it is alive (SSE comments) before the first
    /// token, and the answer equals the one of a server that prefills it in one chunk.
    @Test(.enabled(if: TestModels.available("smollm2"), "needs the real model smollm2"))
    func longPrefillSendsKeepAlivesAndChunkingDoesNotChangeTheAnswer() async throws {
        let loaded = try #require(TestModels.load("smollm2"))
        let words = (0..<150).map { ["river", "stone", "light", "cloud", "field"][$0 % 5] }.joined(separator: " ")
        let body = Data(#"{"messages":[{"role":"user","content":"Repeat: \#(words)"}],"max_tokens":12,"temperature":0,"stream":true}"#.utf8)
        var answers: [String] = []
        for chunk in [16, 512] {
            let engine = BatchEngine(loaded, parallel: 2, contextLength: 1024, maxBatch: 512, prefillChunk: chunk, threads: 2)
            let running = try await RunningServer.start(engine)
            defer { running.stop() }
            let r = try await http("POST", running.base + "/v1/chat/completions", body: body)
            let text = String(decoding: r.body, as: UTF8.self)
            let firstContent = text.range(of: #""content":"\w"#, options: .regularExpression)
            if chunk == 16 {
                let alive = text.range(of: ": keep-alive")
                #expect(alive != nil && firstContent != nil && alive!.lowerBound < firstContent!.lowerBound, "\(text.prefix(600))")
            }
            #expect(r.headers["content-type"] == "text/event-stream" && text.hasSuffix("data: [DONE]\n\n"))
            answers.append(text.split(separator: "\n").filter { $0.hasPrefix("data: {") }.compactMap { line -> String? in
                let chunk = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any]
                let delta = ((chunk?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])
                return delta?["content"] as? String
            }.joined())
        }
        #expect(answers[0] == answers[1] && !answers[0].isEmpty)
    }

    /// The Responses API through the official client's `responses` interface: whole and streamed answers,
    /// previous_response_id (served from the prefix cache), instructions, retrieve/delete, function calls,
    /// structured output, errors (Fixtures/responses_client.py).
    @Test(.enabled(if: TestModels.available("smollm2"), "needs the real model smollm2"),
          .enabled(if: TestModels.pythonClients, "needs python3 with openai, anthropic, httpx, jsonschema, pydantic"))
    func responsesAPIWithTheOfficialClient() async throws {
        let (status, output) = try await runClientScriptOnSmolLM2("responses_client.py", parallel: 4)
        #expect(status == 0, "Responses API checks failed:\n\(output)")
        #expect(output.contains("all Responses API checks passed"))
    }

    /// The chat page at / in a real headless Chromium: streamed text arrives, Stop ends the answer (and
    /// the generation), a second answer shows the speed line; behind --api-key the page asks for the key
    /// (Fixtures/chat_page.py).
    @Test(.enabled(if: TestModels.available("smollm2"), "needs the real model smollm2"),
          .enabled(if: TestModels.headlessChromium, "needs chromium, chromium-driver and python3 selenium"),
          arguments: [nil, "sekret"] as [String?])
    func chatPageInHeadlessChromium(apiKey: String?) async throws {
        let loaded = try #require(TestModels.load("smollm2"))
        let engine = BatchEngine(loaded, parallel: 2, contextLength: 2048, maxBatch: 512, prefillChunk: 256, threads: 2)
        let running = try await RunningServer.start(engine) { $0.apiKey = apiKey; $0.limits.defaultMaxTokens = 256 }
        defer { running.stop() }
        let (status, output) = try await runClientScript("chat_page.py", running.base, "--key", apiKey ?? "")
        #expect(status == 0, "chat page checks failed:\n\(output)")
        #expect(output.contains("all chat page checks passed"))
    }

    @Test(arguments: [true, false])
    func chatPageIsServedUnlessTurnedOff(webUI: Bool) async throws {
        let engine = BatchEngine(TestModels.tiny, parallel: 1, contextLength: 256, threads: 2)
        let running = try await RunningServer.start(engine) { $0.webUI = webUI; $0.apiKey = "sekret" }
        defer { running.stop() }
        let page = try await http("GET", running.base + "/")
        if webUI {
            #expect(page.status == 200 && (page.headers["content-type"] ?? "").hasPrefix("text/html"))
            let html = String(decoding: page.body, as: UTF8.self)
            #expect(html.contains("/v1/chat/completions") && !html.contains("http://") && !html.contains("https://"))
        } else {
            #expect(page.status == 404)
        }
    }

    /// The store keeps at most `storedResponses`, least recently used out first; an evicted response
    /// cannot be continued (404 previous_response_not_found). Raw HTTP on the tiny fixture.
    @Test func storedResponsesAreBounded() async throws {
        let engine = BatchEngine(TestModels.tiny, parallel: 1, contextLength: 256, threads: 2)
        let running = try await RunningServer.start(engine) { $0.storedResponses = 2 }
        defer { running.stop() }
        var ids: [String] = []
        for i in 0..<3 {
            let r = try await http("POST", running.base + "/v1/responses", body: Data(#"{"input":"hi \#(i)","max_output_tokens":2}"#.utf8))
            #expect(r.status == 200 && r.json["object"] as? String == "response")
            ids.append(r.json["id"] as? String ?? "")
        }
        #expect(try await http("GET", running.base + "/v1/responses/\(ids[0])").status == 404)
        #expect(try await http("GET", running.base + "/v1/responses/\(ids[2])").status == 200)
        let r = try await http("POST", running.base + "/v1/responses",
                               body: Data(#"{"input":"again","max_output_tokens":2,"previous_response_id":"\#(ids[0])"}"#.utf8))
        #expect(r.status == 404 && (r.json["error"] as? [String: Any])?["code"] as? String == "previous_response_not_found")
        let bad = try await http("POST", running.base + "/v1/responses", body: Data(#"{"input":[{"type":"input_image"}]}"#.utf8))
        #expect(bad.status == 400 && ((bad.json["error"] as? [String: Any])?["message"] as? String ?? "").contains("input_image"))
    }

    /// Needs no real model: the tiny fixture answers (its text is noise, its errors are real).
    @Test func badRequestsGetErrorsInTheAPIsShape() async throws {
        let loaded = TestModels.tiny
        let engine = BatchEngine(loaded, parallel: 1, contextLength: 256, threads: 2, maxQueue: 0)
        let running = try await RunningServer.start(engine) { $0.apiKey = "sekret"; $0.maxBodyBytes = 4096 }
        defer { running.stop() }
        let auth = ["Authorization": "Bearer sekret"]
        let chat = running.base + "/v1/chat/completions", messages = running.base + "/v1/messages"

        // Health needs no key; the API does (Bearer or x-api-key), compared in constant time.
        #expect(try await http("GET", running.base + "/health").status == 200)
        var r = try await http("POST", chat, body: Data(#"{"messages":[{"role":"user","content":"hi"}]}"#.utf8))
        #expect(r.status == 401 && (r.json["error"] as? [String: Any])?["type"] as? String == "authentication_error")
        r = try await http("POST", messages, body: Data(#"{"max_tokens":4,"messages":[{"role":"user","content":"hi"}]}"#.utf8),
                           headers: ["x-api-key": "wrong"])
        #expect(r.status == 401 && r.json["type"] as? String == "error")
        r = try await http("GET", running.base + "/v1/models", headers: ["x-api-key": "sekret"])
        #expect(r.status == 200)

        // Malformed JSON, wrong types, missing fields, unknown model, oversize body, context overflow.
        func openAIError(_ body: String, status: Int, _ needle: String) async throws {
            let r = try await http("POST", chat, body: Data(body.utf8), headers: auth)
            let message = (r.json["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(r.status == status && message.contains(needle), "\(body): \(r.status) \(String(decoding: r.body, as: UTF8.self))")
        }
        try await openAIError("{not json", status: 400, "not valid JSON")
        try await openAIError("[1,2]", status: 400, "JSON object")
        try await openAIError(#"{"messages":"hi"}"#, status: 400, "'messages' must be an array")
        try await openAIError(#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":"many"}"#, status: 400, "'max_tokens' must be a number")
        try await openAIError(#"{"messages":[{"role":"user","content":"hi"}],"temperature":7}"#, status: 400, "between 0 and 2")
        try await openAIError(#"{"messages":[{"role":"wizard","content":"hi"}]}"#, status: 400, "role 'wizard'")
        // Any model name is answered by the served model; --strict-model-name keeps the 404 (below).
        r = try await http("POST", chat, body: Data(#"{"model":"default","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}"#.utf8), headers: auth)
        #expect(r.status == 200 && r.json["model"] as? String == "default")
        try await openAIError(#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":1000}"#, status: 400, "more than the context (256)")
        try await openAIError(#"{"messages":[{"role":"user","content":"\#(String(repeating: "word ", count: 900))"}]}"#, status: 413, "larger than 4096")
        r = try await http("POST", messages, body: Data(#"{"messages":[{"role":"user","content":"hi"}]}"#.utf8), headers: auth)
        #expect(r.status == 400 && ((r.json["error"] as? [String: Any])?["message"] as? String ?? "").contains("'max_tokens' is required"))
    }

    @Test func strictModelNameRefusesOtherNames() async throws {
        let engine = BatchEngine(TestModels.tiny, parallel: 1, contextLength: 256, threads: 2)
        let running = try await RunningServer.start(engine) { $0.strictModelName = true }
        defer { running.stop() }
        let chat = running.base + "/v1/chat/completions"
        var r = try await http("POST", chat, body: Data(#"{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}"#.utf8))
        let error = r.json["error"] as? [String: Any]
        #expect(r.status == 404 && (error?["message"] as? String ?? "").contains("gpt-9") && error?["code"] as? String == "model_not_found")
        r = try await http("POST", chat, body: Data(#"{"model":"smollm2","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}"#.utf8))
        #expect(r.status == 200)
        let models = try await http("GET", running.base + "/v1/models").json
        let entry = (models["data"] as? [[String: Any]])?.first
        #expect(entry?["id"] as? String == "smollm2" && (entry?["aliases"] as? [String])?.contains("qwen2.f32.gguf") == true)
    }

    /// llama-server's /tokenize and /detokenize shapes, over raw HTTP, behind the API key.
    @Test func tokenizeAndDetokenizeEndpoints() async throws {
        let loaded = TestModels.tiny
        let engine = BatchEngine(loaded, parallel: 1, contextLength: 256, threads: 2)
        let running = try await RunningServer.start(engine) { $0.apiKey = "sekret" }
        defer { running.stop() }
        let auth = ["Authorization": "Bearer sekret"]
        let text = "Hello world, 12345 東京"
        let expected = loaded.tokenizer.encode(text, addSpecial: false).map(Int.init)
        var r = try await http("POST", running.base + "/tokenize", body: Data(#"{"content":"\#(text)"}"#.utf8))
        #expect(r.status == 401)
        r = try await http("POST", running.base + "/tokenize", body: Data(#"{"content":"\#(text)"}"#.utf8), headers: auth)
        #expect(r.status == 200 && r.json["tokens"] as? [Int] == expected)
        r = try await http("POST", running.base + "/tokenize", body: Data(#"{"content":"\#(text)","with_pieces":true}"#.utf8), headers: auth)
        let pieces = r.json["tokens"] as? [[String: Any]] ?? []
        #expect(pieces.map { $0["id"] as? Int ?? -1 } == expected)
        // Whole characters come as strings; a piece holding part of one comes as its bytes.
        var bytes: [UInt8] = []
        for piece in pieces {
            if let s = piece["piece"] as? String { bytes += Array(s.utf8) } else { bytes += (piece["piece"] as? [Int] ?? []).map { UInt8($0) } }
        }
        #expect(String(decoding: bytes, as: UTF8.self) == text)
        r = try await http("POST", running.base + "/detokenize", body: try JSONSerialization.data(withJSONObject: ["tokens": expected]), headers: auth)
        #expect(r.status == 200 && r.json["content"] as? String == text)
        // Bad input: clear errors naming the parameter.
        r = try await http("POST", running.base + "/detokenize", body: Data(#"{"tokens":[1,99999999]}"#.utf8), headers: auth)
        #expect(r.status == 400 && ((r.json["error"] as? [String: Any])?["message"] as? String ?? "").contains("'tokens'[1]"))
        r = try await http("POST", running.base + "/detokenize", body: Data(#"{"tokens":"12"}"#.utf8), headers: auth)
        #expect(r.status == 400)
        r = try await http("POST", running.base + "/tokenize", body: Data(#"{"content":5}"#.utf8), headers: auth)
        #expect(r.status == 400 && ((r.json["error"] as? [String: Any])?["message"] as? String ?? "").contains("'content' must be a string"))
        r = try await http("POST", running.base + "/tokenize", body: Data(#"{"content":"<|im_start|>","add_special":true,"parse_special":false}"#.utf8), headers: auth)
        #expect(r.status == 200 && (r.json["tokens"] as? [Int])?.count ?? 0 > 1)
    }

    /// The only slot busy and no queue: 503 with Retry-After, in the API's shape (the real model keeps the
    /// slot busy long enough to be seen).
    @Test(.enabled(if: TestModels.available("smollm2"), "needs the real model smollm2"))
    func fullQueueGets503WithRetryAfter() async throws {
        let loaded = try #require(TestModels.load("smollm2"))
        let engine = BatchEngine(loaded, parallel: 1, contextLength: 256, threads: 2, maxQueue: 0)
        let running = try await RunningServer.start(engine) { $0.apiKey = "sekret" }
        defer { running.stop() }
        let auth = ["Authorization": "Bearer sekret"]
        let chat = running.base + "/v1/chat/completions"
        let long = Task {
            try await http("POST", chat, body: Data(#"{"messages":[{"role":"user","content":"Tell a long story."}],"max_tokens":200,"temperature":0}"#.utf8),
                           headers: auth)
        }
        var busy: HTTPResult?
        for _ in 0..<100 {
            try await Task.sleep(nanoseconds: 20_000_000)
            let r = try await http("POST", chat, body: Data(#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"#.utf8), headers: auth)
            if r.status == 503 { busy = r; break }
        }
        #expect(busy?.headers["retry-after"] == "1")
        #expect(((busy?.json["error"] as? [String: Any])?["message"] as? String ?? "").contains("busy"))
        #expect(try await long.value.status == 200)
        // Nothing leaked: every page is free or cached again.
        let health = try await http("GET", running.base + "/health").json
        #expect(health["active"] as? Int == 0)
    }
}
