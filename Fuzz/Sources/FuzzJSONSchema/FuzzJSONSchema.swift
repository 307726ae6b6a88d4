// Fuzz target: constrained decoding — the JSON Schema compiler (Sources/Sampling/JSONSchema.swift), the
// JSON recogniser it drives (JSONConstraint.swift) and the tool-call constraint (OutputConstraint.swift).
//
// Input: schema JSON, optionally followed by a NUL byte and a "document". The schema is parsed with
// JSONSerialization (as the server parses request bodies) and compiled, with the default limits and with
// small ones; errors must be JSONSchemaError. When it compiles, the document steers a walk through a
// JSONConstraint and through a ToolCallConstraint over it: each document byte is fed when the constraint
// accepts it, else it picks one of the bytes of a JSON alphabet that the constraint accepts (so random
// documents still go deep). Checks:
// * `accepts` agrees with `feed` on a copy;
// * whenever the constraint says the output is complete, the bytes so far are JSON (RFC 8259, read with
//   TemplateValue.parseJSON) and the value is valid for the schema (SchemaValidator.swift); a tool call
//   is {"name": <one of the tools>, "arguments": <valid for that tool's schema>}.

import ChatTemplate
import Foundation
import FuzzSupport
import Sampling

/// Bytes tried when a document byte does not fit: structure, literals, digits, some letters, escapes.
let alphabet = Array("{}[],:\" \\/-+.0123456789eEtrufalsnbcdghijkmopqvwxyzABCDF\n".utf8) + [0xC3, 0xA9, 0xF0, 0x9F, 0x99, 0x82]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONSchema(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let (head, tail) = Fuzz.split(Fuzz.bytes(data, size))
    guard let schemaJSON = try? JSONSerialization.jsonObject(with: Data(head), options: [.fragmentsAllowed]) else { return 0 }
    var small = JSONSchemaLimits()
    small.maxNodes = 24; small.maxPropertiesPerObject = 4; small.maxProperties = 8; small.maxLiterals = 6
    small.maxLiteralBytes = 64; small.maxDepth = 4; small.maxRefDepth = 2; small.maxBranches = 3
    _ = compile(schemaJSON, limits: small)
    guard let schema = compile(schemaJSON, limits: JSONSchemaLimits()) else { return 0 }
    let document = Array((tail ?? []).prefix(384))

    // JSON of the schema.
    let json = walk(JSONConstraint(schema: schema), document) { output in
        validate(output, schemaJSON, what: "JSON output")
    }
    _ = json
    // One tool call among three tools: the schema, any object, the schema again under a longer name.
    let tools = [ToolSchema(name: "get_weather", arguments: schema), ToolSchema(name: "get", arguments: JSONSchema(anyOf: .object)),
                 ToolSchema(name: "get_weather_v2", arguments: schema)]
    let prefix = Array(ToolCallConstraint.prefix("get").prefix(10))   // {"name": "
    _ = walk(ToolCallConstraint(tools: tools), prefix + document) { output in
        guard SchemaValidator.strict || String(validating: output, as: UTF8.self) != nil else { return }   // K4, see validate
        guard case .object(let call)? = JSONValue.parse(output), call.keys == ["name", "arguments"],
              case .string(let name)? = call["name"], let arguments = call["arguments"] else {
            Fuzz.check(false, "a complete tool call is not {\"name\": ..., \"arguments\": ...}: \(Fuzz.text(output))")
            return
        }
        Fuzz.check(tools.contains { $0.name == name }, "tool call names an unknown tool '\(name)'")
        if name != "get" {
            let argumentsText = Array(output[ToolCallConstraint.prefix(name).count..<(output.count - 1)])
            validate(argumentsText, schemaJSON, what: "tool call arguments")
        } else {
            Fuzz.check(arguments.objectValue != nil, "arguments of 'get' are not an object")
        }
    }
    return 0
}

func compile(_ json: Any, limits: JSONSchemaLimits) -> JSONSchema? {
    do {
        return try JSONSchema(json, limits: limits)
    } catch let error as JSONSchemaError {
        _ = error.description
        return nil
    } catch {
        Fuzz.check(false, "JSONSchema threw something other than JSONSchemaError: \(error)")
        return nil
    }
}

/// Feeds `document` (steered as described above); calls `complete` with the output whenever the
/// constraint says it is complete. Returns the output.
func walk<C: TokenConstraint>(_ start: C, _ document: [UInt8], complete: ([UInt8]) -> Void) -> [UInt8] {
    var constraint = start
    var output: [UInt8] = []
    for byte in document {
        if constraint.isFinished { break }
        var next = byte
        if !constraint.accepts([byte]) {
            // The first fitting byte of the alphabet, starting at a place the document byte picks.
            let start = Int(byte) % alphabet.count
            guard let k = (0..<alphabet.count).first(where: { constraint.accepts([alphabet[(start + $0) % alphabet.count]]) }) else { break }
            next = alphabet[(start + k) % alphabet.count]
        }
        var copy = constraint
        Fuzz.check(copy.feed([next]), "feed refuses a byte accepts took: \(next) after \(Fuzz.text(output))")
        constraint = copy
        output.append(next)
        if constraint.isComplete { complete(output) }
    }
    // Multi-byte feeding agrees with byte by byte.
    if !output.isEmpty {
        Fuzz.check(start.accepts(output), "accepts(whole output) is false though every byte was taken: \(Fuzz.text(output))")
    }
    return output
}

/// The output is JSON and valid for the schema.
func validate(_ output: [UInt8], _ schema: Any, what: String) {
    // Deviation K4 (fixed; see SchemaValidator.swift): strings accepted any byte >= 0x20, so a complete output
    // could hold bytes that are not UTF-8. Reported unless DS_FUZZ_STRICT=0.
    guard SchemaValidator.strict || String(validating: output, as: UTF8.self) != nil else { return }
    let text = Fuzz.text(output)
    // RFC 8259 (TemplateValue.parseJSON; Foundation's parser also refuses numbers beyond Double, e.g. 2e600).
    guard let value = JSONValue.parse(output) else {
        Fuzz.check(false, "\(what) the constraint calls complete is not JSON: \(text)")
        return
    }
    var validator = SchemaValidator(root: schema)
    if let problem = validator.problem(value, schema, path: "#") {
        Fuzz.check(false, "\(what) the constraint calls complete is not valid for the schema: \(problem)\noutput: \(text)")
    }
}
