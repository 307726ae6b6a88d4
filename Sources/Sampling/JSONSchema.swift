// A JSON Schema subset compiled for constrained decoding: what a value may be at each place of the
// output. Supported: type (one or several), properties, required, additionalProperties (false, true or a
// schema; with `properties` and no additionalProperties, only the listed keys are generated), items,
// prefixItems, minItems, maxItems, minLength, maxLength, enum, const, anyOf / oneOf (branches must start
// differently: different types), $ref to # or #/… (JSON pointer; recursion allowed when it goes through
// an object or array). Annotations (title, description, default, examples, format, $schema, $id) are
// ignored. Other validation keywords (pattern, minimum, maximum, multipleOf, uniqueItems, allOf, not, if,
// patternProperties, …) cannot be enforced while generating and are refused, so an accepted schema is
// always satisfied.
//
// Compilation is total: a schema from a client may be hostile. Every size is capped (JSONSchemaLimits),
// the compiler's own recursion is bounded by the nesting cap, and a $ref cycle that could recur without
// consuming a byte of output (`{"anyOf": [{"$ref": "#"}]}`) is refused naming its path, so the recogniser
// never loops or recurses without bound.

import Foundation

public struct JSONSchemaError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Caps on what a schema may ask for (OpenAI's structured outputs have similar ones).
public struct JSONSchemaLimits: Sendable {
    /// Compiled nodes (each schema object, each $ref).
    public var maxNodes = 5_000
    /// Properties of one object, and of all objects together.
    public var maxPropertiesPerObject = 1_000
    public var maxProperties = 5_000
    /// enum / const values of the whole schema, and their serialized bytes.
    public var maxLiterals = 5_000
    public var maxLiteralBytes = 256 << 10
    /// Nesting of schema objects (through properties, items, anyOf, … and $ref targets).
    public var maxDepth = 64
    /// $ref targets being compiled inside one another.
    public var maxRefDepth = 32
    /// anyOf / oneOf branches of one node.
    public var maxBranches = 64
    public init() {}
}

/// Kinds of JSON values.
public struct JSONKinds: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let object = JSONKinds(rawValue: 1), array = JSONKinds(rawValue: 2), string = JSONKinds(rawValue: 4)
    public static let number = JSONKinds(rawValue: 8), integer = JSONKinds(rawValue: 16), boolean = JSONKinds(rawValue: 32)
    public static let null = JSONKinds(rawValue: 64)
    public static let any: JSONKinds = [.object, .array, .string, .number, .integer, .boolean, .null]

    /// Number and integer start alike: a branch of either owns both.
    var startKinds: JSONKinds {
        intersection([.number, .integer]).isEmpty ? self : union([.number, .integer])
    }
}

/// One compiled schema node (indices into JSONSchema.nodes and JSONSchema.tries).
public struct JSONSchemaNode: Sendable {
    public var kinds: JSONKinds = .any
    /// Allowed serialized values (enum / const) as a trie index; nil: any value of `kinds`.
    public var literals: Int?
    /// Listed properties, sorted bytewise by name; `keys` is the trie of their names.
    public var properties: [(name: [UInt8], node: Int)] = []
    public var keys: Int?
    /// Indices into `properties` that must be present.
    public var required: [Int] = []
    /// Node for keys not in `properties` (nil: no other keys).
    public var additional: Int?
    public var items: Int?
    public var prefixItems: [Int] = []
    public var minItems = 0, maxItems = Int.max
    public var minLength = 0, maxLength = Int.max
    /// anyOf / oneOf branches by the kinds each accepts, flattened (no branch has branches itself).
    public var branches: [(kinds: JSONKinds, node: Int)] = []
    /// A $ref: this node is the target's (resolved when compilation ends).
    var alias: Int?
}

public struct JSONSchema: Sendable {
    public private(set) var nodes: [JSONSchemaNode] = []
    public private(set) var tries: [ByteTrie] = []
    public let root: Int

    /// Tries of the keywords every schema needs (`true`/`false`, `null`).
    static let booleanTrie = 0, nullTrie = 1

    /// Any JSON value of the given kinds (`json_object`: .object).
    public init(anyOf kinds: JSONKinds) {
        var n = JSONSchemaNode()
        n.kinds = kinds
        n.additional = 1
        n.items = 1
        nodes = [n, JSONSchemaNode()]
        nodes[1].additional = 1
        nodes[1].items = 1
        tries = JSONSchema.keywordTries
        root = 0
    }

    /// Compiles a schema given as parsed JSON (JSONSerialization objects).
    public init(_ schema: Any, limits: JSONSchemaLimits = JSONSchemaLimits()) throws {
        var builder = JSONSchemaBuilder(rootSchema: schema, limits: limits)
        let top = try builder.compile(schema, path: "#", depth: 0)
        try builder.link()
        root = builder.resolved(top)
        nodes = builder.nodes
        tries = builder.tries
    }

    static let keywordTries = [ByteTrie([Array("true".utf8), Array("false".utf8)]), ByteTrie([Array("null".utf8)])]

    public subscript(_ i: Int) -> JSONSchemaNode { nodes[i] }
}

/// Turns schema JSON into nodes: one pass that compiles (refs become alias nodes), then `link`, which
/// resolves aliases, flattens anyOf branches and checks that branches start differently.
struct JSONSchemaBuilder {
    let rootSchema: Any
    let limits: JSONSchemaLimits
    var nodes: [JSONSchemaNode] = []
    var tries: [ByteTrie] = JSONSchema.keywordTries
    /// Where each node came from (for errors found while linking).
    var paths: [String] = []
    var refs: [String: Int] = [:]
    /// $refs being compiled, with the container depth at which they started: meeting one again at the
    /// same container depth is a cycle that consumes no input.
    var refsInProgress: [String: Int] = [:]
    var containerDepth = 0
    var propertyCount = 0, literalCount = 0, literalBytes = 0
    /// Node accepting any JSON value.
    var anyNode: Int?

    static let annotations: Set<String> = ["title", "description", "default", "examples", "format", "$schema", "$id",
                                           "$comment", "deprecated", "readOnly", "writeOnly", "$defs", "definitions",
                                           "contentMediaType", "contentEncoding", "strict", "name"]
    static let handled: Set<String> = ["type", "properties", "required", "additionalProperties", "items", "prefixItems",
                                       "minItems", "maxItems", "minLength", "maxLength", "enum", "const", "anyOf", "oneOf", "$ref"]

    init(rootSchema: Any, limits: JSONSchemaLimits) {
        self.rootSchema = rootSchema
        self.limits = limits
    }

    func error(_ path: String, _ message: String) -> JSONSchemaError { JSONSchemaError(message: "\(path): \(message)") }

    mutating func newNode(_ node: JSONSchemaNode = JSONSchemaNode(), path: String) throws -> Int {
        guard nodes.count < limits.maxNodes else {
            throw error(path, "the schema has more than \(limits.maxNodes) parts; simplify it")
        }
        nodes.append(node)
        paths.append(path)
        return nodes.count - 1
    }

    mutating func any(path: String) throws -> Int {
        if let a = anyNode { return a }
        let i = try newNode(path: path)
        anyNode = i
        nodes[i].additional = i
        nodes[i].items = i
        return i
    }

    /// Compiles a child inside an object or array: recursion through it consumes input.
    mutating func compileContained(_ schema: Any, path: String, depth: Int) throws -> Int {
        containerDepth += 1
        defer { containerDepth -= 1 }
        return try compile(schema, path: path, depth: depth)
    }

    mutating func compile(_ schema: Any, path: String, depth: Int) throws -> Int {
        guard depth <= limits.maxDepth else { throw error(path, "the schema nests deeper than \(limits.maxDepth) levels") }
        if JSONSchemaBuilder.isBool(schema), let b = schema as? Bool {
            guard b else { throw error(path, "the schema false accepts nothing") }
            return try any(path: path)
        }
        guard let s = schema as? [String: Any] else { throw error(path, "a schema must be an object") }
        for key in s.keys.sorted() where !JSONSchemaBuilder.annotations.contains(key) && !JSONSchemaBuilder.handled.contains(key) {
            throw error(path, "the keyword '\(key)' cannot be enforced while generating; remove it")
        }
        if let ref = s["$ref"] {
            try refuseBeside("$ref", in: s, allowing: [], path: path)
            return try compileRef(ref, path: path, depth: depth)
        }
        var n = JSONSchemaNode()
        if let t = s["type"] { n.kinds = try kinds(t, path: path) }
        n.minItems = try count(s, "minItems", path: path) ?? 0
        n.maxItems = try count(s, "maxItems", path: path) ?? Int.max
        n.minLength = try count(s, "minLength", path: path) ?? 0
        n.maxLength = try count(s, "maxLength", path: path) ?? Int.max
        if s["enum"] != nil || s["const"] != nil {
            // A listed value is generated exactly: only type and length can be checked against it, here.
            try refuseBeside("enum/const", in: s, allowing: ["type", "minLength", "maxLength", "enum", "const"], path: path)
            var values: [Any]
            if let c = s["const"] {
                values = [c]
            } else {
                guard let list = s["enum"] as? [Any], !list.isEmpty else { throw error(path, "enum must be a non-empty array") }
                values = list
            }
            values = values.filter { JSONSchemaBuilder.satisfies($0, n) }
            guard !values.isEmpty else { throw error(path, "no enum/const value has the type and length the schema asks for") }
            n.literals = try literalTrie(values, path: path)
            n.kinds = n.kinds.intersection(JSONSchemaBuilder.startKinds(of: tries[n.literals!].strings))
            return try newNode(n, path: path)
        }
        for key in ["anyOf", "oneOf"] where s[key] != nil {
            // Branches replace the value's own rules: only type narrows them.
            try refuseBeside(key, in: s, allowing: ["type", key], path: path)
        }
        try compileObjectKeywords(s, into: &n, path: path, depth: depth)
        if let items = s["items"] {
            n.items = try compileContained(items, path: "\(path)/items", depth: depth + 1)
        } else {
            n.items = try any(path: path)
        }
        if let prefix = s["prefixItems"] {
            guard let prefix = prefix as? [Any] else { throw error(path, "prefixItems must be an array") }
            for (i, p) in prefix.enumerated() {
                n.prefixItems.append(try compileContained(p, path: "\(path)/prefixItems/\(i)", depth: depth + 1))
            }
        }
        for key in ["anyOf", "oneOf"] {
            guard let raw = s[key] else { continue }
            guard let branches = raw as? [Any], !branches.isEmpty else { throw error(path, "\(key) must be a non-empty array") }
            guard branches.count <= limits.maxBranches else { throw error(path, "\(key) has more than \(limits.maxBranches) branches") }
            for (i, b) in branches.enumerated() {
                // Kinds are filled in when linking (a branch may be a $ref still being compiled).
                n.branches.append(([], try compile(b, path: "\(path)/\(key)/\(i)", depth: depth + 1)))
            }
        }
        return try newNode(n, path: path)
    }

    /// Refuses validation keywords beside `keyword` that generation could not enforce together with it.
    func refuseBeside(_ keyword: String, in s: [String: Any], allowing allowed: Set<String>, path: String) throws {
        let other = s.keys.filter { JSONSchemaBuilder.handled.contains($0) && !allowed.contains($0) && $0 != keyword }.sorted()
        if let first = other.first {
            throw error(path, "'\(first)' beside \(keyword) cannot be enforced while generating; move it into the \(keyword == "$ref" ? "referenced schema" : "branches or values")")
        }
    }

    /// Whether a listed value has a kind the node allows and, for a string, a length (in code points)
    /// within its bounds.
    static func satisfies(_ v: Any, _ n: JSONSchemaNode) -> Bool {
        if v is NSNull { return n.kinds.contains(.null) }
        if isBool(v) { return n.kinds.contains(.boolean) }
        if let s = v as? String { return n.kinds.contains(.string) && (n.minLength...n.maxLength).contains(s.unicodeScalars.count) }
        if let x = v as? NSNumber {
            let d = x.doubleValue
            return d == d.rounded() && abs(d) < 9.007e15 ? !n.kinds.isDisjoint(with: [.integer, .number]) : n.kinds.contains(.number)
        }
        if v is [Any] { return n.kinds.contains(.array) }
        return n.kinds.contains(.object)
    }

    mutating func compileRef(_ raw: Any, path: String, depth: Int) throws -> Int {
        guard let ref = raw as? String else { throw error(path, "$ref must be a string") }
        if let i = refs[ref] {
            if let started = refsInProgress[ref], started == containerDepth {
                throw error(path, "$ref '\(ref)' refers back to itself without an object or array in between; it would recur forever")
            }
            return i
        }
        guard refsInProgress.count < limits.maxRefDepth else {
            throw error(path, "$ref '\(ref)' is nested more than \(limits.maxRefDepth) references deep")
        }
        let target = try resolve(ref, path: path)
        let i = try newNode(path: path)
        refs[ref] = i
        refsInProgress[ref] = containerDepth
        defer { refsInProgress[ref] = nil }
        nodes[i].alias = try compile(target, path: ref, depth: depth + 1)
        return i
    }

    /// properties, required, additionalProperties.
    mutating func compileObjectKeywords(_ s: [String: Any], into n: inout JSONSchemaNode, path: String, depth: Int) throws {
        var listed: [String: Any] = [:]
        if let raw = s["properties"] {
            guard let props = raw as? [String: Any] else { throw error(path, "properties must be an object") }
            listed = props
        }
        if let add = s["additionalProperties"] {
            if JSONSchemaBuilder.isBool(add), let b = add as? Bool {
                n.additional = b ? try any(path: path) : nil
            } else {
                n.additional = try compileContained(add, path: "\(path)/additionalProperties", depth: depth + 1)
            }
        } else {
            n.additional = s["properties"] == nil ? try any(path: path) : nil
        }
        var required: [String] = []
        if let raw = s["required"] {
            guard let names = raw as? [String] else { throw error(path, "required must be an array of strings") }
            required = Array(Set(names)).sorted()
        }
        // A required key that is not listed is an additional key that must appear: it is listed with the
        // additional schema.
        let unlisted = Set(required.filter { listed[$0] == nil })
        if let name = unlisted.sorted().first, n.additional == nil {
            throw error(path, "required property '\(name)' is not allowed by properties")
        }
        let names = (Array(listed.keys) + unlisted).map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
        guard names.count <= limits.maxPropertiesPerObject else {
            throw error(path, "an object may list at most \(limits.maxPropertiesPerObject) properties, this one has \(names.count)")
        }
        propertyCount += names.count
        guard propertyCount <= limits.maxProperties else { throw error(path, "the schema lists more than \(limits.maxProperties) properties") }
        for name in names {
            let key = String(decoding: name, as: UTF8.self)
            guard !name.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) else {
                throw error(path, "property name '\(key)' has a quote, backslash or control character; it cannot be generated")
            }
            let child = unlisted.contains(key) ? n.additional!
                : try compileContained(listed[key]!, path: "\(path)/properties/\(key)", depth: depth + 1)
            n.properties.append((name, child))
        }
        if !names.isEmpty {
            tries.append(ByteTrie(names))
            n.keys = tries.count - 1
        }
        n.required = required.map { r in names.firstIndex(of: Array(r.utf8))! }
    }

    func kinds(_ t: Any, path: String) throws -> JSONKinds {
        guard let names = (t as? [String]) ?? (t as? String).map({ [$0] }) else {
            throw error(path, "type must be a string or an array of strings")
        }
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
            default: throw error(path, "unknown type '\(name)'")
            }
        }
        return kinds
    }

    func count(_ s: [String: Any], _ key: String, path: String) throws -> Int? {
        guard let raw = s[key] else { return nil }
        guard !JSONSchemaBuilder.isBool(raw), let n = raw as? NSNumber, n.doubleValue >= 0, n.doubleValue == n.doubleValue.rounded() else {
            throw error(path, "\(key) must be a non-negative integer")
        }
        return n.doubleValue >= Double(Int.max) ? Int.max : n.intValue
    }

    mutating func literalTrie(_ values: [Any], path: String) throws -> Int {
        let serialized = values.map(JSONSchemaBuilder.serialize)
        literalCount += serialized.count
        literalBytes += serialized.reduce(0) { $0 + $1.count }
        guard literalCount <= limits.maxLiterals else { throw error(path, "the schema has more than \(limits.maxLiterals) enum/const values") }
        guard literalBytes <= limits.maxLiteralBytes else {
            throw error(path, "the schema's enum/const values are longer than \(limits.maxLiteralBytes) bytes together")
        }
        tries.append(ByteTrie(serialized))
        return tries.count - 1
    }

    /// Kinds of the values that start like these serialized values.
    static func startKinds(of values: [[UInt8]]) -> JSONKinds {
        var kinds: JSONKinds = []
        for v in values {
            switch v.first {
            case 0x7B: kinds.insert(.object)
            case 0x5B: kinds.insert(.array)
            case 0x22: kinds.insert(.string)
            case 0x74, 0x66: kinds.insert(.boolean)
            case 0x6E: kinds.insert(.null)
            default: kinds.formUnion([.number, .integer])
            }
        }
        return kinds
    }

    /// The schema a local $ref points at: "#" (the root) or a JSON pointer "#/a/b".
    func resolve(_ ref: String, path: String) throws -> Any {
        guard ref == "#" || ref.hasPrefix("#/") else { throw error(path, "only local $ref (# or #/...) is supported, got \(ref)") }
        var node: Any = rootSchema
        guard ref != "#" else { return node }
        for part in ref.dropFirst(2).split(separator: "/", omittingEmptySubsequences: false) {
            let key = part.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            if let o = node as? [String: Any], let next = o[key] {
                node = next
            } else if let a = node as? [Any], let i = Int(key), a.indices.contains(i) {
                node = a[i]
            } else {
                throw error(path, "$ref \(ref) does not resolve")
            }
        }
        return node
    }

    // MARK: - Linking

    /// The node an index stands for once $ref aliases are followed.
    func resolved(_ i: Int) -> Int {
        var j = i, steps = 0
        while let next = nodes[j].alias, steps <= nodes.count { j = next; steps += 1 }
        return j
    }

    /// Replaces aliases by their targets, then flattens anyOf branches (leaves first) and checks that the
    /// branches of each node start with different kinds.
    mutating func link() throws {
        for i in nodes.indices {
            var n = nodes[i]
            n.properties = n.properties.map { ($0.name, resolved($0.node)) }
            n.additional = n.additional.map(resolved)
            n.items = n.items.map(resolved)
            n.prefixItems = n.prefixItems.map(resolved)
            n.branches = n.branches.map { ($0.kinds, resolved($0.node)) }
            nodes[i] = n
        }
        for i in try branchOrder() where !nodes[i].branches.isEmpty && nodes[i].alias == nil {
            var flat: [(kinds: JSONKinds, node: Int)] = []
            let own = nodes[i].kinds   // the parent's `type` narrows every branch
            for branch in nodes[i].branches {
                let b = nodes[branch.node]
                if b.literals == nil && !b.branches.isEmpty {
                    // Already flat (leaves first), its kinds narrowed by its own type: lift them.
                    flat += b.branches.map { ($0.kinds.intersection(own), $0.node) }
                } else {
                    flat.append((b.kinds.intersection(own), branch.node))
                }
            }
            flat.removeAll { $0.kinds.isEmpty }
            guard !flat.isEmpty else { throw error(paths[i], "no anyOf/oneOf branch has a type this schema allows") }
            var seen: JSONKinds = []
            for branch in flat {
                let starts = branch.kinds.startKinds
                guard seen.intersection(starts).isEmpty else {
                    throw error(paths[i], "anyOf/oneOf branches must have different types to be generated")
                }
                seen.formUnion(starts)
            }
            nodes[i].branches = flat
            nodes[i].kinds = flat.reduce(JSONKinds()) { $0.union($1.kinds) }
        }
    }

    /// Nodes with branches, each after the branches it has (Kahn's algorithm over branch edges). A cycle
    /// is impossible after the $ref check; it is refused all the same rather than trusted.
    func branchOrder() throws -> [Int] {
        var pending = [Int](repeating: 0, count: nodes.count)
        var parents = [[Int]](repeating: [], count: nodes.count)
        for (i, n) in nodes.enumerated() where n.alias == nil {
            for b in n.branches {
                pending[i] += 1
                parents[b.node].append(i)
            }
        }
        var order: [Int] = [], ready = nodes.indices.filter { pending[$0] == 0 }
        while let i = ready.popLast() {
            order.append(i)
            for p in parents[i] {
                pending[p] -= 1
                if pending[p] == 0 { ready.append(p) }
            }
        }
        if let stuck = pending.firstIndex(where: { $0 > 0 }) {
            throw error(paths[stuck], "anyOf/oneOf branches refer back to this schema without an object or array in between")
        }
        return order
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
