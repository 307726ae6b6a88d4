// A plain JSON Schema validator for the keywords JSONSchema compiles (type, properties, required,
// additionalProperties, items, prefixItems, minItems, maxItems, minLength, maxLength, enum, const, anyOf,
// oneOf, $ref), written from the JSON Schema text rather than from the constraint, to check what the
// constraint lets a model write. Where JSONSchema documents a different reading, this follows it:
// * oneOf is read as anyOf (exclusivity cannot be enforced while generating);
// * a $ref's sibling keywords are ignored (draft 7);
// * without additionalProperties, an object with properties allows no other keys (stricter than the
//   standard; the constraint enforces it, so checking it here only makes the check stricter).
// Documents are parsed with TemplateValue.parseJSON (which keeps key order); strings and keys are
// compared by Unicode scalars, as JSON does, not by Swift's canonical equivalence.
//
// Deviations the constraint once had (fixed; their inputs are regression seeds). DS_FUZZ_STRICT=0 tolerates
// them again, to look past them when checking an older build:
// * K1: a schema with anyOf/oneOf is only its branches (sibling keywords such as type are not enforced);
// * K2: a schema with enum/const is only its values (sibling keywords such as maxLength are not enforced);
// * K3: minLength counts a surrogate pair written as two \u escapes as two characters;
// * K4 (checked in FuzzJSONSchema.swift): strings may hold bytes that are not UTF-8.

import ChatTemplate
import Foundation
import FuzzSupport

enum JSONValue {
    static func parse(_ bytes: [UInt8]) -> TemplateValue? { try? TemplateValue.parseJSON(String(decoding: bytes, as: UTF8.self)) }
}

struct SchemaValidator {
    let root: Any
    private var depth = 0
    /// Report K1-K4 too (the default: they are fixed).
    static let strict = Fuzz.environment("DS_FUZZ_STRICT") != "0"

    init(root: Any) { self.root = root }

    static func isBool(_ v: Any) -> Bool { String(describing: type(of: v)).contains("Bool") }

    /// nil when `value` is valid for `schema`, else what is wrong (and where).
    mutating func problem(_ value: TemplateValue, _ schema: Any, path: String) -> String? {
        depth += 1
        defer { depth -= 1 }
        if depth > 400 { return nil }   // no verdict this deep
        if SchemaValidator.isBool(schema), let b = schema as? Bool { return b ? nil : "\(path): the schema false" }
        guard let s = schema as? [String: Any] else { return nil }
        if let ref = s["$ref"] as? String {
            guard let target = resolve(ref) else { return nil }
            return problem(value, target, path: "\(path)→\(ref)")
        }
        if !SchemaValidator.strict {
            if s["enum"] != nil || s["const"] != nil {   // K2
                var only: [String: Any] = [:]
                for key in ["enum", "const"] where s[key] != nil { only[key] = s[key] }
                if only.count < s.count { return problem(value, only, path: path) }
            } else if s["anyOf"] != nil || s["oneOf"] != nil {   // K1
                var only: [String: Any] = [:]
                for key in ["anyOf", "oneOf"] where s[key] != nil { only[key] = s[key] }
                if only.count < s.count { return problem(value, only, path: path) }
            }
        }
        if let t = s["type"] {
            let names = (t as? [String]) ?? (t as? String).map { [$0] } ?? []
            if !names.contains(where: { matches(value, type: $0) }) { return "\(path): \(describe(value)) is not of type \(names)" }
        }
        if let values = s["enum"] as? [Any], !values.contains(where: { equal(value, $0) }) {
            return "\(path): \(describe(value)) is not in the enum"
        }
        if let c = s["const"], !equal(value, c) { return "\(path): \(describe(value)) is not the const" }
        switch value {
        case .object(let object):
            let listed = (s["properties"] as? [String: Any]) ?? [:]
            var byBytes: [[UInt8]: Any] = [:]
            for (k, v) in listed { byBytes[Array(k.utf8)] = v }
            let additional = s["additionalProperties"]
            var present = Set<[UInt8]>()
            for (key, child) in object.entries {
                let bytes = Array(key.utf8)
                present.insert(bytes)
                if let sub = byBytes[bytes] {
                    if let p = problem(child, sub, path: "\(path)/\(key)") { return p }
                } else if let additional {
                    if let p = problem(child, additional, path: "\(path)/\(key)(additional)") { return p }
                } else if s["properties"] != nil {
                    return "\(path): key '\(key)' is not listed and additionalProperties is absent"
                }
            }
            for name in (s["required"] as? [String]) ?? [] where !present.contains(Array(name.utf8)) {
                return "\(path): required key '\(name)' is missing"
            }
        case .array(let items):
            let prefix = (s["prefixItems"] as? [Any]) ?? []
            for (i, item) in items.enumerated() {
                let sub: Any? = i < prefix.count ? prefix[i] : s["items"]
                if let sub, let p = problem(item, sub, path: "\(path)/\(i)") { return p }
            }
            if let n = count(s["minItems"]), items.count < n { return "\(path): \(items.count) items, minItems \(n)" }
            if let n = count(s["maxItems"]), items.count > n { return "\(path): \(items.count) items, maxItems \(n)" }
        case .string(let text):
            let length = text.unicodeScalars.count
            let most = SchemaValidator.strict ? length : text.utf16.count   // K3
            if let n = count(s["minLength"]), most < n { return "\(path): string of \(length) characters, minLength \(n)" }
            if let n = count(s["maxLength"]), length > n { return "\(path): string of \(length) characters, maxLength \(n)" }
        default:
            break
        }
        for key in ["anyOf", "oneOf"] {
            guard let branches = s[key] as? [Any] else { continue }
            var reasons: [String] = []
            var any = false
            for (i, b) in branches.enumerated() {
                if let p = problem(value, b, path: "\(path)/\(key)/\(i)") { reasons.append(p) } else { any = true; break }
            }
            if !any { return "\(path): no \(key) branch fits: \(reasons.joined(separator: "; "))" }
        }
        return nil
    }

    func count(_ raw: Any?) -> Int? {
        guard let raw, !SchemaValidator.isBool(raw), let n = raw as? NSNumber else { return nil }
        return n.doubleValue >= Double(Int.max) ? Int.max : n.intValue
    }

    func matches(_ value: TemplateValue, type: String) -> Bool {
        switch (type, value) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null): return true
        case ("number", .int), ("number", .double), ("integer", .int): return true
        case ("integer", .double(let d)): return d == d.rounded()
        default: return false
        }
    }

    /// JSON equality of a document value and a schema value (numbers by value, strings by scalars).
    func equal(_ value: TemplateValue, _ other: Any) -> Bool {
        if other is NSNull { return value == .null }
        if SchemaValidator.isBool(other), let b = other as? Bool { return value == .bool(b) }
        if let s = other as? String {
            if case .string(let t) = value { return Array(t.unicodeScalars) == Array(s.unicodeScalars) }
            return false
        }
        if let n = other as? NSNumber {
            switch value {
            case .int(let i): return Double(i) == n.doubleValue
            case .double(let d): return d == n.doubleValue
            default: return false
            }
        }
        if let a = other as? [Any] {
            guard case .array(let items) = value, items.count == a.count else { return false }
            return zip(items, a).allSatisfy { equal($0, $1) }
        }
        if let o = other as? [String: Any] {
            guard case .object(let object) = value, object.count == o.count else { return false }
            var byBytes: [[UInt8]: Any] = [:]
            for (k, v) in o { byBytes[Array(k.utf8)] = v }
            return object.entries.allSatisfy { entry in byBytes[Array(entry.key.utf8)].map { equal(entry.value, $0) } ?? false }
        }
        return false
    }

    func describe(_ value: TemplateValue) -> String { String(value.jsonString().prefix(80)) }

    /// A local $ref ("#" or a JSON pointer "#/a/b" with ~1 and ~0 escapes).
    func resolve(_ ref: String) -> Any? {
        guard ref == "#" || ref.hasPrefix("#/") else { return nil }
        var node: Any = root
        guard ref != "#" else { return node }
        for part in ref.dropFirst(2).split(separator: "/", omittingEmptySubsequences: false) {
            let key = part.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            if let o = node as? [String: Any], let next = o[key] {
                node = next
            } else if let a = node as? [Any], let i = Int(key), a.indices.contains(i) {
                node = a[i]
            } else {
                return nil
            }
        }
        return node
    }
}
