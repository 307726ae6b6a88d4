// What stands between the network and the engine: the server is a shared service on the user's machine,
// so no client (and no web page the user visits) may crash it, stall it for the others or use it unasked.
//
// - BrowserGuard (a router middleware, before every route): a Host header that is neither the bound
//   address nor a loopback name gets 403 (DNS rebinding: a page on evil.example whose name resolves to
//   127.0.0.1 sends Host: evil.example); a cross-site Origin gets 403 unless --cors-origin allows it
//   (then CORS headers and preflight answers); POST bodies must be application/json (415), so a page
//   cannot send a "simple" text/plain request that needs no preflight.
// - AdmissionGate: body reading, JSON parsing, template rendering and tokenizing run for at most N
//   requests at once; the next waits briefly for a place (a burst parses in milliseconds), then gets
//   503 + Retry-After before its body is read.
// - RequestLimits: every field a client controls has a bound.

import Foundation
import Hummingbird

/// Bounds on what one request may ask for; each refusal is a 400 naming the field.
public struct RequestLimits: Sendable {
    /// Messages in a conversation, tools offered.
    public var maxMessages = 4_096
    public var maxTools = 128
    /// Stop strings: how many (OpenAI allows 4, Anthropic 16 and more) and how long each is.
    public var maxStopStrings = 16
    public var maxStopBytes = 1_024
    /// Nesting of any JSON value in a request (messages, tool schemas, tool arguments).
    public var maxJSONDepth = 64
    /// max_tokens when the request leaves it out (llama-server and vLLM cap it too).
    public var defaultMaxTokens = 4_096
    public init() {}
}

/// Counts requests between admission and submission to the engine.
final class AdmissionGate: @unchecked Sendable {
    let capacity: Int
    private var inside = 0
    private let lock = NSLock()

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Takes a place if one is free.
    func tryEnter() -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard inside < capacity else { return false }
        inside += 1
        return true
    }

    /// Takes a place, waiting up to `seconds` for one to free: a burst of requests each holds a place
    /// for milliseconds; places held by slow bodies are what the wait gives up on.
    func enter(waitingUpTo seconds: Double) async -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, seconds) * 1e9)
        while true {
            if tryEnter() { return true }
            if DispatchTime.now().uptimeNanoseconds >= deadline || Task.isCancelled { return false }
            try? await Task.sleep(nanoseconds: 5_000_000)
        }
    }

    func leave() {
        lock.lock(); defer { lock.unlock() }
        inside -= 1
    }

    var occupied: Int { lock.lock(); defer { lock.unlock() }; return inside }
}

/// Host, Origin and Content-Type checks, and CORS for the origins the operator allowed.
struct BrowserGuard: RouterMiddleware {
    typealias Context = BasicRequestContext
    let server: APIServer

    /// The host part of a Host header ("[::1]:8080" → "::1", "localhost:8080" → "localhost"), lowercased.
    static func hostName(_ header: String) -> String {
        let h = header.trimmingCharacters(in: .whitespaces).lowercased()
        if h.hasPrefix("["), let close = h.firstIndex(of: "]") { return String(h[h.index(after: h.startIndex)..<close]) }
        if h.filter({ $0 == ":" }).count == 1, let colon = h.lastIndex(of: ":") { return String(h[..<colon]) }
        return h
    }

    static func isLoopbackName(_ name: String) -> Bool {
        name == "localhost" || name.hasSuffix(".localhost") || name == "::1" || name == "0:0:0:0:0:0:0:1"
            || (name.hasPrefix("127.") && name.split(separator: ".").count == 4 && name.split(separator: ".").allSatisfy { UInt8($0) != nil })
    }

    /// Whether the server listens on every interface (then clients name it in ways it cannot know).
    static func isWildcard(_ host: String) -> Bool { host.isEmpty || host == "0.0.0.0" || host == "::" || host == "*" }

    func hostAllowed(_ request: Request) -> Bool {
        let config = server.configuration
        guard !BrowserGuard.isWildcard(config.host), let header = request.head.authority else { return true }
        let name = BrowserGuard.hostName(header)
        return BrowserGuard.isLoopbackName(name) || name == BrowserGuard.hostName(config.host)
            || config.allowedHosts.contains { $0.lowercased() == name }
    }

    func originAllowedByOperator(_ origin: String) -> Bool {
        server.configuration.corsOrigins.contains("*") || server.configuration.corsOrigins.contains(origin)
    }

    /// An Origin naming this very server (a page it served itself; it serves none, but it is not cross-site).
    func isSameOrigin(_ origin: String, _ request: Request) -> Bool {
        guard let host = request.head.authority else { return false }
        return origin.lowercased() == "http://" + host.lowercased() || origin.lowercased() == "https://" + host.lowercased()
    }

    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let media = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        return media == "application/json"
    }

    func refuse(_ request: Request, status: Int, _ message: String) -> Response {
        let api: APIFlavor = request.uri.path.hasPrefix("/v1/messages") ? .anthropic : .openAI
        let kind: APIError.Kind = status == 403 ? .forbidden : .invalidRequest
        return server.errorResponse(APIError(status: status, kind: kind, message: message), api)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard hostAllowed(request) else {
            return refuse(request, status: 403, "the Host header '\(request.head.authority ?? "")' is not this server's address; "
                          + "requests through another name are refused (DNS rebinding). Use --allowed-host to add a name")
        }
        let origin = request.headers[.origin]
        var corsOrigin: String?
        if let origin {
            if originAllowedByOperator(origin) {
                corsOrigin = server.configuration.corsOrigins.contains("*") ? "*" : origin
            } else if !isSameOrigin(origin, request) {
                return refuse(request, status: 403, "cross-site requests from origin '\(origin)' are refused; start the server with --cors-origin \(origin) to allow them")
            }
        }
        if request.method == .options, let corsOrigin, request.headers[.accessControlRequestMethod] != nil {
            var headers: HTTPFields = [.accessControlAllowOrigin: corsOrigin, .accessControlAllowMethods: "GET, POST, OPTIONS",
                                       .accessControlMaxAge: "600", .vary: "Origin"]
            headers[.accessControlAllowHeaders] = request.headers[.accessControlRequestHeaders] ?? "authorization, content-type, x-api-key"
            return Response(status: .noContent, headers: headers)
        }
        if request.method == .post && !BrowserGuard.isJSON(request.headers[.contentType]) {
            return refuse(request, status: 415, "the request body must be sent with Content-Type: application/json, got '\(request.headers[.contentType] ?? "none")'")
        }
        var response = try await next(request, context)
        if let corsOrigin {
            response.headers[.accessControlAllowOrigin] = corsOrigin
            response.headers[.vary] = "Origin"
        }
        return response
    }
}

extension APIServer {
    /// The deepest nesting of a JSON value (objects and arrays), counted without recursion, stopping
    /// once it passes `limit`.
    static func nestingDepth(_ value: Any, limit: Int) -> Int {
        var stack: [(Any, Int)] = [(value, 1)]
        var deepest = 0
        while let (v, depth) = stack.popLast() {
            if let o = v as? [String: Any] {
                deepest = max(deepest, depth)
                if depth > limit { return depth }
                for child in o.values { stack.append((child, depth + 1)) }
            } else if let a = v as? [Any] {
                deepest = max(deepest, depth)
                if depth > limit { return depth }
                for child in a { stack.append((child, depth + 1)) }
            }
        }
        return deepest
    }

    /// Every top-level field nests at most `maxJSONDepth` levels.
    func checkNesting(_ body: JSONBody) throws {
        let limit = configuration.limits.maxJSONDepth
        for key in body.object.keys.sorted() where APIServer.nestingDepth(body.object[key]!, limit: limit) > limit {
            throw APIError.invalid("'\(key)' nests deeper than \(limit) levels", param: key)
        }
    }

    /// A conversation's text that cannot fit the context even at the longest token is refused before it
    /// is rendered or tokenized (work bounded by the context, not by the body).
    func checkPromptBytes(_ bytes: Int, param: String) throws {
        let most = engine.contextLength * maxBytesPerToken
        guard bytes <= most else {
            throw APIError.invalid("the prompt's \(bytes) bytes cannot fit the context (\(engine.contextLength) tokens of at most \(maxBytesPerToken) bytes)", param: param)
        }
    }

    /// Reads the body within the size limit and the time limit. The read and the timer race; the loser
    /// is cancelled and not waited for (a body stream need not honour cancellation at once).
    func collectBody(_ request: Request) async throws -> ByteBuffer {
        let limit = configuration.maxBodyBytes, seconds = configuration.bodyTimeoutSeconds
        let race = BodyRace()
        let outcome: Result<ByteBuffer, Error>? = await withCheckedContinuation { continuation in
            race.start(continuation)
            let reader = Task {
                do { race.finish(.success(try await request.body.collect(upTo: limit))) } catch { race.finish(.failure(error)) }
            }
            Task {
                try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                if race.finish(nil) { reader.cancel() }
            }
        }
        switch outcome {
        case .success(let buffer): return buffer
        case .failure(let error as HTTPError) where error.status == .contentTooLarge:
            throw APIError(status: 413, kind: .tooLarge, message: "the request body is larger than \(limit) bytes")
        case .failure:
            throw APIError(status: 413, kind: .tooLarge, message: "the request body could not be read (larger than \(limit) bytes, or the connection failed)")
        case nil:
            throw APIError(status: 408, kind: .invalidRequest, message: "the request body did not arrive within \(Int(seconds)) seconds")
        }
    }
}

/// The first of two outcomes resumes the waiting request; the later one is dropped.
final class BodyRace: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Result<ByteBuffer, Error>?, Never>?

    func start(_ c: CheckedContinuation<Result<ByteBuffer, Error>?, Never>) {
        lock.lock(); continuation = c; lock.unlock()
    }

    /// Resumes with `outcome` if nothing did yet; whether it did.
    @discardableResult
    func finish(_ outcome: Result<ByteBuffer, Error>?) -> Bool {
        lock.lock()
        let c = continuation
        continuation = nil
        lock.unlock()
        c?.resume(returning: outcome)
        return c != nil
    }
}
