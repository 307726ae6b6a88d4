// Request bodies read as JSON objects with typed accessors that name the offending parameter, and the
// error shapes of both APIs (OpenAI: {"error": {...}}; Anthropic: {"type": "error", "error": {...}}).

import Foundation

/// An API error: HTTP status, a machine-readable kind and a message for the client.
struct APIError: Error {
    enum Kind { case invalidRequest, authentication, forbidden, notFound, tooLarge, overloaded, internalError }
    var status: Int
    var kind: Kind
    var message: String
    var param: String?
    var retryAfter: Int?
    /// OpenAI's machine-readable `code` where the kind's default does not say it.
    var code: String? = nil

    static let busyReading = APIError(status: 503, kind: .overloaded, message: "the server is busy reading other requests; retry later", retryAfter: 1)

    static func responseNotFound(_ id: String) -> APIError {
        APIError(status: 404, kind: .notFound, message: "response '\(id)' is not stored here", param: "response_id", code: "response_not_found")
    }

    static func invalid(_ message: String, param: String? = nil) -> APIError {
        APIError(status: 400, kind: .invalidRequest, message: message, param: param)
    }

    var openAIType: String {
        switch kind {
        case .invalidRequest, .tooLarge, .notFound: return "invalid_request_error"
        case .authentication: return "authentication_error"
        case .forbidden: return "permission_error"
        case .overloaded: return "rate_limit_error"
        case .internalError: return "server_error"
        }
    }

    var anthropicType: String {
        switch kind {
        case .invalidRequest: return "invalid_request_error"
        case .authentication: return "authentication_error"
        case .forbidden: return "permission_error"
        case .notFound: return "not_found_error"
        case .tooLarge: return "request_too_large"
        case .overloaded: return "overloaded_error"
        case .internalError: return "api_error"
        }
    }

    /// The error body in the shape of `api`.
    func body(_ api: APIFlavor) -> [String: Any] {
        switch api {
        case .openAI:
            var e: [String: Any] = ["message": message, "type": openAIType, "param": param ?? NSNull(), "code": NSNull()]
            if kind == .authentication { e["code"] = "invalid_api_key" }
            if kind == .notFound { e["code"] = "model_not_found" }
            if let code { e["code"] = code }
            return ["error": e]
        case .anthropic:
            return ["type": "error", "error": ["type": anthropicType, "message": message]]
        }
    }
}

enum APIFlavor { case openAI, anthropic }

/// A JSON object from a request body.
struct JSONBody {
    let object: [String: Any]

    init(_ data: Data) throws {
        guard !data.isEmpty else { throw APIError.invalid("the request body is empty; send a JSON object") }
        let value: Any
        do { value = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw APIError.invalid("the request body is not valid JSON: \((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)")")
        }
        guard let object = value as? [String: Any] else { throw APIError.invalid("the request body must be a JSON object") }
        self.object = object
    }

    init(object: [String: Any]) { self.object = object }

    func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    func string(_ key: String) throws -> String? {
        guard has(key) else { return nil }
        guard let s = object[key] as? String else { throw APIError.invalid("'\(key)' must be a string", param: key) }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, JSONBody.isBool(n) else {
            throw APIError.invalid("'\(key)' must be true or false", param: key)
        }
        return n.boolValue
    }

    func number(_ key: String, in range: ClosedRange<Double>? = nil) throws -> Double? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, !JSONBody.isBool(n) else {
            throw APIError.invalid("'\(key)' must be a number", param: key)
        }
        let v = n.doubleValue
        if let range, !range.contains(v) {
            throw APIError.invalid("'\(key)' must be between \(JSONBody.show(range.lowerBound)) and \(JSONBody.show(range.upperBound)), got \(JSONBody.show(v))", param: key)
        }
        return v
    }

    func integer(_ key: String, in range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let v = try number(key) else { return nil }
        guard v == v.rounded(), abs(v) < 1e15 else { throw APIError.invalid("'\(key)' must be an integer", param: key) }
        let i = Int(v)
        if let range, !range.contains(i) {
            throw APIError.invalid("'\(key)' must be between \(range.lowerBound) and \(range.upperBound), got \(i)", param: key)
        }
        return i
    }

    func array(_ key: String) throws -> [Any]? {
        guard has(key) else { return nil }
        guard let a = object[key] as? [Any] else { throw APIError.invalid("'\(key)' must be an array", param: key) }
        return a
    }

    func objectValue(_ key: String) throws -> JSONBody? {
        guard has(key) else { return nil }
        guard let o = object[key] as? [String: Any] else { throw APIError.invalid("'\(key)' must be an object", param: key) }
        return JSONBody(object: o)
    }

    /// A string or an array of strings (stop sequences), at most `max` of at most `maxBytes` bytes each.
    func strings(_ key: String, max: Int, maxBytes: Int) throws -> [String] {
        guard has(key) else { return [] }
        if let s = object[key] as? String {
            guard s.utf8.count <= maxBytes else { throw APIError.invalid("'\(key)' may be at most \(maxBytes) bytes, got \(s.utf8.count)", param: key) }
            return [s]
        }
        guard let a = object[key] as? [Any], a.allSatisfy({ $0 is String }) else {
            throw APIError.invalid("'\(key)' must be a string or an array of strings", param: key)
        }
        guard a.count <= max else { throw APIError.invalid("'\(key)' may hold at most \(max) strings", param: key) }
        let strings = a as! [String]
        if let long = strings.first(where: { $0.utf8.count > maxBytes }) {
            throw APIError.invalid("'\(key)' strings may be at most \(maxBytes) bytes each; one has \(long.utf8.count)", param: key)
        }
        return strings
    }

    /// JSON true/false arrive as a boolean NSNumber subclass (numbers as NSNumber itself).
    static func isBool(_ n: NSNumber) -> Bool {
        type(of: n) != NSNumber.self && String(describing: type(of: n)).contains("Bool")
    }

    static func show(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }
}

/// JSON text of a response object.
func jsonData(_ object: Any) -> Data {
    // JSONSerialization stops the process (it does not throw) on a top-level scalar or an invalid value:
    // a scalar is written inside an array and the brackets cut off; anything still invalid becomes null.
    if JSONSerialization.isValidJSONObject(object) {
        return (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])) ?? Data("null".utf8)
    }
    guard JSONSerialization.isValidJSONObject([object]),
          let wrapped = try? JSONSerialization.data(withJSONObject: [object], options: [.withoutEscapingSlashes]) else { return Data("null".utf8) }
    return wrapped.dropFirst().dropLast()
}
