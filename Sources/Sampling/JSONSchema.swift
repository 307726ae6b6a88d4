// A JSON Schema subset compiled for constrained decoding: what a value may be at each place of the
// output. Supported: type (one or several), properties, required, additionalProperties (false, true or a
// schema; with `properties` and no additionalProperties, only the listed keys are generated), items,
// prefixItems, minItems, maxItems, minLength, maxLength, enum, const, anyOf / oneOf (branches must start
// differently: different types), $ref to #/$defs/… or #/definitions/…. Annotations (title,
// description, default, examples, format, $schema, $id) are ignored. Other validation keywords
// (pattern, minimum, maximum, multipleOf, uniqueItems, allOf, not, if, patternProperties, …) cannot be
// enforced while generating and are refused, so an accepted schema is always satisfied.

import Foundation

public struct JSONSchemaError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Kinds of JSON values.
public struct JSONKinds: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let object = JSONKinds(rawValue: 1), array = JSONKinds(rawValue: 2), string = JSONKinds(rawValue: 4)
    public static let number = JSONKinds(rawValue: 8), integer = JSONKinds(rawValue: 16), boolean = JSONKinds(rawValue: 32)
    public static let null = JSONKinds(rawValue: 64)
    public static let any: JSONKinds = [.object, .array, .string, .number, .integer, .boolean, .null]
}

/// One compiled schema node (indices into JSONSchema.nodes).
public struct JSONSchemaNode: Sendable {
    public var kinds: JSONKinds = .any
    /// Allowed serialized values (enum / const), nil: any value of `kinds`.
    public var literals: [[UInt8]]?
    public var properties: [(name: [UInt8], node: Int)] = []
    public var required: Set<[UInt8]> = []
    /// Node for keys not in `properties` (nil: no other keys).
    public var additional: Int?
    public var items: Int?
    public var prefixItems: [Int] = []
    public var minItems = 0, maxItems = Int.max
    public var minLength = 0, maxLength = Int.max
    /// anyOf / oneOf branches by the kinds each accepts.
    public var branches: [(kinds: JSONKinds, node: Int)] = []
}

public struct JSONSchema: Sendable {
    public private(set) var nodes: [JSONSchemaNode] = []
    public let root: Int

    /// Any JSON value of the given kinds (`json_object`: .object).
    public init(anyOf kinds: JSONKinds) {
        var n = JSONSchemaNode()
        n.kinds = kinds
        n.additional = 1
        n.items = 1
        nodes = [n, JSONSchemaNode()]
        nodes[1].additional = 1
        nodes[1].items = 1
        root = 0
    }

    /// Compiles a schema given as parsed JSON (JSONSerialization objects).
    public init(_ schema: Any) throws {
        var builder = Builder(rootSchema: schema)
        root = try builder.compile(schema, path: "#")
        nodes = builder.nodes
    }

    private struct Builder {
        let rootSchema: Any
        var nodes: [JSONSchemaNode] = []
        var refs: [String: Int] = [:]
        /// Node accepting any JSON value.
        var anyNode: Int?

        static let annotations: Set<String> = ["title", "description", "default", "examples", "format", "$schema", "$id",
                                               "$comment", "deprecated", "readOnly", "writeOnly", "$defs", "definitions",
                                               "contentMediaType", "contentEncoding", "strict", "name"]
        static let handled: Set<String> = ["type", "properties", "required", "additionalProperties", "items", "prefixItems",
                                           "minItems", "maxItems", "minLength", "maxLength", "enum", "const", "anyOf", "oneOf", "$ref"]

        mutating func any() -> Int {
            if let a = anyNode { return a }
            nodes.append(JSONSchemaNode())
            let i = nodes.count - 1
            anyNode = i
            nodes[i].additional = i
            nodes[i].items = i
            return i
        }

        mutating func compile(_ schema: Any, path: String) throws -> Int {
            if Builder.isBool(schema), let b = schema as? Bool {
                guard b else { throw JSONSchemaError(message: "\(path): the schema false accepts nothing") }
                return any()
            }
            guard let s = schema as? [String: Any] else { throw JSONSchemaError(message: "\(path): a schema must be an object") }
            for key in s.keys where !Builder.annotations.contains(key) && !Builder.handled.contains(key) {
                throw JSONSchemaError(message: "\(path): the keyword '\(key)' cannot be enforced while generating; remove it")
            }
            if let ref = s["$ref"] as? String {
                if let i = refs[ref] { return i }
                let target = try resolve(ref, path: path)
                nodes.append(JSONSchemaNode())
                let i = nodes.count - 1
                refs[ref] = i
                let compiled = try compile(target, path: ref)
                nodes[i] = nodes[compiled]
                return i
            }
            var n = JSONSchemaNode()
            if let t = s["type"] {
                let names = (t as? [String]) ?? [(t as? String) ?? ""]
                var kinds: JSONKinds = []
                for name in names {
                    switch name {
                    case "object": kinds.insert(.object)
                    case "array": kinds.insert(.array)
                    case "string": kinds.insert(.string)
                    case "number": kinds.formUnion([.number, .integer])
                    case "integer": kinds.insert(.integer)
                    case "boolean": kinds.insert(.boolean)
                    case "null": kinds.insert(.null)
                    default: throw JSONSchemaError(message: "\(path): unknown type '\(name)'")
                    }
                }
                n.kinds = kinds
            }
            if let values = s["enum"] as? [Any] {
                guard !values.isEmpty else { throw JSONSchemaError(message: "\(path): enum is empty") }
                n.literals = values.map(Builder.serialize)
            }
            if let c = s["const"] { n.literals = [Builder.serialize(c)] }
            if let props = s["properties"] as? [String: Any] {
                // Keys in the schema's order when the JSON text kept it (JSONSerialization does not:
                // sorted for determinism).
                for name in props.keys.sorted() {
                    n.properties.append((Array(name.utf8), -1))
                }
                for (k, p) in n.properties.enumerated() {
                    let child = try compile(props[String(decoding: p.name, as: UTF8.self)]!, path: "\(path)/properties/\(String(decoding: p.name, as: UTF8.self))")
                    n.properties[k].node = child
                }
                n.additional = nil
            } else {
                n.additional = any()
            }
            if let req = s["required"] as? [String] { n.required = Set(req.map { Array($0.utf8) }) }
            if let add = s["additionalProperties"] {
                if Builder.isBool(add), let b = add as? Bool {
                    n.additional = b ? any() : nil
                } else {
                    n.additional = try compile(add, path: "\(path)/additionalProperties")
                }
            }
            for r in n.required where !n.properties.contains(where: { $0.name == r }) && n.additional == nil {
                throw JSONSchemaError(message: "\(path): required property '\(String(decoding: r, as: UTF8.self))' is not allowed by properties")
            }
            if let items = s["items"] {
                n.items = try compile(items, path: "\(path)/items")
            } else {
                n.items = any()
            }
            if let prefix = s["prefixItems"] as? [Any] {
                n.prefixItems = try prefix.enumerated().map { try compile($0.element, path: "\(path)/prefixItems/\($0.offset)") }
            }
            if let v = s["minItems"] as? Int { n.minItems = v }
            if let v = s["maxItems"] as? Int { n.maxItems = v }
            if let v = s["minLength"] as? Int { n.minLength = v }
            if let v = s["maxLength"] as? Int { n.maxLength = v }
            if let branches = (s["anyOf"] ?? s["oneOf"]) as? [Any] {
                var seen: JSONKinds = []
                for (i, b) in branches.enumerated() {
                    let node = try compile(b, path: "\(path)/anyOf/\(i)")
                    var kinds = nodes[node].kinds
                    if kinds.contains(.number) { kinds.insert(.integer) }
                    let starts = Builder.startKinds(kinds)
                    guard seen.intersection(starts).isEmpty else {
                        throw JSONSchemaError(message: "\(path): anyOf/oneOf branches must have different types to be generated")
                    }
                    seen.formUnion(starts)
                    n.branches.append((kinds, node))
                }
                n.kinds = n.kinds.intersection(seen)
            }
            nodes.append(n)
            return nodes.count - 1
        }

        /// Number and integer start alike: a branch of either owns both.
        static func startKinds(_ k: JSONKinds) -> JSONKinds {
            var s = k
            if !k.intersection([.number, .integer]).isEmpty { s.formUnion([.number, .integer]) }
            return s
        }

        func resolve(_ ref: String, path: String) throws -> Any {
            guard ref.hasPrefix("#/") else { throw JSONSchemaError(message: "\(path): only local $ref (#/...) is supported, got \(ref)") }
            var node: Any = rootSchema
            for part in ref.dropFirst(2).split(separator: "/") {
                let key = part.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
                guard let o = node as? [String: Any], let next = o[key] else {
                    throw JSONSchemaError(message: "\(path): $ref \(ref) does not resolve")
                }
                node = next
            }
            return node
        }

        /// JSON true/false (a Swift Bool, or the boolean NSNumber subclass JSONSerialization makes).
        static func isBool(_ v: Any) -> Bool { String(describing: type(of: v)).contains("Bool") }

        static func serialize(_ v: Any) -> [UInt8] {
            if v is NSNull { return Array("null".utf8) }
            if isBool(v), let b = v as? Bool { return Array((b ? "true" : "false").utf8) }
            if let s = v as? String {
                let data = (try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
                return Array(data.dropFirst().dropLast())
            }
            let data = (try? JSONSerialization.data(withJSONObject: [v], options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("[null]".utf8)
            return Array(data.dropFirst().dropLast())
        }
    }

    public subscript(_ i: Int) -> JSONSchemaNode { nodes[i] }
}
