// The JSON recogniser behind response_format: it accepts exactly the prefixes of JSON texts a schema
// allows, says when the value is complete, and refuses schemas it could not enforce.

import Foundation
import Testing
import Sampling

@Suite struct JSONConstraintTests {
    func schema(_ json: String) throws -> JSONSchema {
        try JSONSchema(JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed]))
    }

    /// Feeds `text` byte by byte; returns how many bytes were accepted and whether the value is complete.
    func run(_ s: JSONSchema, _ text: String) -> (accepted: Int, complete: Bool) {
        var c = JSONConstraint(schema: s)
        var n = 0
        for b in text.utf8 {
            guard c.feed([b]) else { return (n, false) }
            n += 1
        }
        return (n, c.isComplete)
    }

    func accepts(_ s: JSONSchema, _ text: String) -> Bool { let r = run(s, text); return r.accepted == text.utf8.count && r.complete }
    func rejects(_ s: JSONSchema, _ text: String) -> Bool { run(s, text).accepted < text.utf8.count }

    @Test func anyJSONObject() {
        let s = JSONSchema(anyOf: .object)
        for good in [#"{}"#, #"{"a": 1}"#, #"{"a": [1, 2.5e-3, -0, "x\"\u00e9", true, null, {"b": {}}]}"#, "{\n  \"k\": \"v\"\n}"] {
            #expect(accepts(s, good), "\(good)")
        }
        for bad in [#"[]"#, #"{"a" 1}"#, #"{"a": 01}"#, #"{"a": tru}"#, #"{,}"#, #"{"a": 1,}"#, #"{"a": "\x"}"#, "{\"a\": \"\n\"}", #"{"a": 1} x"#] {
            #expect(rejects(s, bad) || !run(s, bad).complete, "\(bad)")
        }
        // Prefixes are accepted but not complete; blanks are limited.
        #expect(run(s, #"{"a": [1, 2"#) == (11, false))
        #expect(rejects(s, "{" + String(repeating: " ", count: 40)))
    }

    @Test func objectSchemaWithRequiredKeysEnumsAndIntegers() throws {
        let s = try schema(#"""
        {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}, "age": {"type": "integer"},
         "colour": {"enum": ["red", "green"]}, "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}},
         "required": ["name", "age"], "additionalProperties": false}
        """#)
        #expect(accepts(s, #"{"name": "Ann", "age": 30}"#))
        #expect(accepts(s, #"{"age": 3, "colour": "green", "name": "Bo", "tags": ["a", "b"]}"#))
        #expect(rejects(s, #"{"name": "Ann"}"#))                  // age is required before }
        #expect(rejects(s, #"{"nickname": 1}"#))                   // unknown key
        #expect(rejects(s, #"{"name": "Annabel"}"#))               // maxLength 5
        #expect(rejects(s, #"{"age": 3.5}"#))                      // integer
        #expect(rejects(s, #"{"colour": "blue"}"#))                // enum
        #expect(rejects(s, #"{"tags": ["a", "b", "c"]}"#))         // maxItems
        #expect(rejects(s, #"{"name": "A", "name": "B"}"#))        // duplicate key
        #expect(rejects(s, #"{"age": 1, "name": "x", "colour": "red", "tags": [], "#))   // no key left after ,
    }

    @Test func refsAnyOfAndNumbers() throws {
        let s = try schema(#"""
        {"$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                              "required": ["x", "y"]}},
         "type": "object", "properties": {"p": {"$ref": "#/$defs/Point"}, "label": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
         "required": ["p"]}
        """#)
        #expect(accepts(s, #"{"p": {"x": -1.5e3, "y": 0}, "label": null}"#))
        #expect(accepts(s, #"{"label": "a", "p": {"y": 2, "x": 1}}"#))
        #expect(rejects(s, #"{"p": {"x": 1}}"#))
        #expect(rejects(s, #"{"p": {"x": 1, "y": 2}, "label": 3}"#))
        // A number at the very top may go on: complete, yet more digits still fit.
        let n = try schema(#"{"type": "number"}"#)
        var c = JSONConstraint(schema: n)
        #expect(c.feed(Array("12".utf8)) && c.isComplete && c.accepts(Array("3".utf8)) && !c.isFinished)
    }

    @Test func unenforceableSchemasAreRefused() throws {
        for bad in [#"{"type": "string", "pattern": "^a"}"#, #"{"type": "integer", "minimum": 3}"#, #"{"allOf": []}"#,
                    #"{"anyOf": [{"type": "string"}, {"type": "string", "maxLength": 2}]}"#, #"{"type": "thing"}"#,
                    #"{"$ref": "http://example.org/s"}"#] {
            #expect(throws: JSONSchemaError.self, "\(bad)") { try schema(bad) }
        }
        // Annotations are fine.
        _ = try schema(#"{"title": "T", "description": "d", "type": "string", "format": "date-time", "default": "x"}"#)
    }
}

/// Hostile schemas: compilation is total (cycles that consume no input, sizes past the caps) and the
/// recogniser's work per byte is bounded.
@Suite struct HostileSchemaTests {
    func schema(_ json: String, limits: JSONSchemaLimits = JSONSchemaLimits()) throws -> JSONSchema {
        try JSONSchema(JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed]), limits: limits)
    }

    func refusal(_ json: String, limits: JSONSchemaLimits = JSONSchemaLimits()) -> String? {
        do { _ = try schema(json, limits: limits); return nil } catch let e as JSONSchemaError { return e.message } catch { return "\(error)" }
    }

    func feed(_ s: JSONSchema, _ text: String) -> (ok: Bool, complete: Bool) {
        var c = JSONConstraint(schema: s)
        let ok = c.feed(Array(text.utf8))
        return (ok, ok && c.isComplete)
    }

    /// The request that crashed the server: a $ref back to the root through anyOf, consuming nothing.
    @Test func cyclesWithoutInputAreRefusedNamingThePath() {
        let cases: [(String, String)] = [
            (##"{"anyOf": [{"$ref": "#"}]}"##, "#/anyOf/0"),
            (##"{"anyOf": [{"$ref": "#/"}]}"##, "#/anyOf/0"),   // "#/" is the property "" of the root: does not resolve
            (##"{"$ref": "#"}"##, "#"),
            (##"{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}"##,
             "#/$defs/b/oneOf/1"),
        ]
        for (json, path) in cases {
            let message = refusal(json)
            #expect(message?.hasPrefix(path + ":") == true, "\(json): \(message ?? "accepted")")
        }
    }

    /// Recursion through an object or array consumes input: allowed, and nesting is capped at run time.
    @Test func recursionThroughContainersIsAllowedAndBounded() throws {
        let tree = try schema(#"""
        {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                   "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"], "additionalProperties": false}},
         "$ref": "#/$defs/node"}
        """#)
        #expect(feed(tree, ##"{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": [{"v": 4, "kids": []}]}]}"##).complete)
        #expect(!feed(tree, ##"{"v": 1, "kids": [{"w": 2}]}"##).ok)
        let lists = try schema(##"{"anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#"}}]}"##)
        #expect(feed(lists, "[1, [2, [3]], []]").complete)
        // Nesting past the cap is refused instead of growing the stack.
        let deep = String(repeating: "[", count: JSONConstraint.maxNesting + 4)
        let r = feed(lists, deep)
        #expect(!r.ok)
        #expect(feed(lists, String(repeating: "[", count: JSONConstraint.maxNesting - 2)).ok)
        // The same for json_object (any value, recursive by construction).
        #expect(!feed(JSONSchema(anyOf: .object), "{\"a\":" + String(repeating: "[", count: JSONConstraint.maxNesting + 1)).ok)
    }

    @Test func sizesPastTheCapsAreRefused() {
        var small = JSONSchemaLimits()
        small.maxNodes = 10; small.maxLiterals = 3; small.maxPropertiesPerObject = 2; small.maxDepth = 3; small.maxRefDepth = 2
        small.maxLiteralBytes = 8
        #expect(refusal(##"{"type": "array", "prefixItems": [{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}]}"##, limits: small)?.contains("parts") == true)
        #expect(refusal(##"{"enum": [1, 2, 3, 4]}"##, limits: small)?.contains("enum/const values") == true)
        #expect(refusal(##"{"enum": ["abcdefghij"]}"##, limits: small)?.contains("bytes") == true)
        #expect(refusal(##"{"properties": {"a": {}, "b": {}, "c": {}}}"##, limits: small)?.contains("at most 2 properties") == true)
        #expect(refusal(##"{"items": {"items": {"items": {"items": {}}}}}"##, limits: small)?.hasPrefix("#/items/items/items/items:") == true)
        let refs = ##"{"$defs": {"a": {"items": {"$ref": "#/$defs/b"}}, "b": {"items": {"$ref": "#/$defs/c"}}, "c": {}}, "$ref": "#/$defs/a"}"##
        var shallowRefs = JSONSchemaLimits()
        shallowRefs.maxRefDepth = 2
        #expect(refusal(refs, limits: shallowRefs)?.contains("references deep") == true)
        // Malformed keyword values are errors, not crashes.
        for bad in [##"{"enum": 3}"##, ##"{"enum": []}"##, ##"{"properties": []}"##, ##"{"required": "a"}"##, ##"{"minItems": -1}"##,
                    ##"{"maxLength": 1.5}"##, ##"{"anyOf": {}}"##, ##"{"anyOf": []}"##, ##"{"$ref": 7}"##, ##"{"type": 3}"##, ##"{"prefixItems": {}}"##,
                    ##"{"properties": {"a\"b": {}}}"##, ##"{"$ref": "#/$defs/missing"}"##] {
            #expect(refusal(bad) != nil, "\(bad)")
        }
        // The default caps: a huge schema is refused, not compiled.
        let many = (0..<6000).map { "\"p\($0)\": {}" }.joined(separator: ", ")
        #expect(refusal("{\"properties\": {\(many)}}") != nil)
    }

    /// Large enums and many properties go through tries: the right values pass, and a prefix that only
    /// leads to keys already written is refused at once (no dead end).
    @Test func largeEnumsAndPropertySetsAreExact() throws {
        let values = (0..<4000).map { "\"v\($0)\"" }.joined(separator: ", ")
        let e = try schema("{\"enum\": [\(values), 12, 123, null]}")
        #expect(feed(e, "\"v3999\"").complete && feed(e, "\"v0\"").complete && feed(e, "12").complete && feed(e, "123").complete)
        #expect(!feed(e, "\"v4000\"").complete && !feed(e, "\"w").ok && !feed(e, "124").complete)
        let props = (0..<900).map { "\"k\($0)\": {\"type\": \"integer\"}" }.joined(separator: ", ")
        let o = try schema("{\"type\": \"object\", \"properties\": {\(props), \"only\": {\"const\": true}}, \"required\": [\"k5\", \"extra\"], \"additionalProperties\": {\"type\": \"string\"}}")
        #expect(feed(o, ##"{"k5": 1, "extra": "x", "k899": 2, "only": true}"##).complete)
        #expect(!feed(o, ##"{"k5": 1}"##).complete)                       // "extra" is required
        #expect(!feed(o, ##"{"extra": "x", "k5": 1, "k5""##).ok)          // duplicate listed key
        #expect(!feed(o, ##"{"extra": "x", "k5": 1, "extra""##).ok)       // duplicate additional key
        #expect(!feed(o, ##"{"extra": 1"##).ok)                            // additional keys are strings
        let closed = try schema(##"{"type": "object", "properties": {"ab": {}, "ac": {}}, "additionalProperties": false}"##)
        #expect(feed(closed, ##"{"ab": 1, "ac": 2}"##).complete)
        #expect(!feed(closed, ##"{"ab": 1, "ab"##).ok)                      // only a written key lies that way
        #expect(!feed(closed, ##"{"ab": 1, "ac": 2, "##).ok)                // no key left
        #expect(feed(closed, ##"{"ab": 1, "a"##).ok)                        // "ac" is still open
    }

    /// Tool argument schemas go through the same compiler.
    @Test func toolArgumentSchemasAreBoundedToo() throws {
        let args = try schema(##"{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}"##)
        var c = ToolCallConstraint(tools: [ToolSchema(name: "weather", arguments: args)])
        #expect(c.feed(Array(##"{"name": "weather", "arguments": {"city": "Oslo"}}"##.utf8)) && c.isComplete)
        #expect(refusal(##"{"type": "object", "properties": {"x": {"anyOf": [{"$ref": "#/properties/x"}]}}}"##)?
            .hasPrefix("#/properties/x/anyOf/0:") == true)
    }

    func feedBytes(_ s: JSONSchema, _ bytes: [UInt8]) -> (ok: Bool, complete: Bool) {
        var c = JSONConstraint(schema: s)
        let ok = c.feed(bytes)
        return (ok, ok && c.isComplete)
    }

    /// Found by the fuzzing harness's validator: what the recogniser accepts must be what a JSON parser
    /// and a schema validator accept.
    @Test func generatedStringsAreWellFormedAndCountedAsValidatorsCount() throws {
        let any = JSONSchema(anyOf: .any)
        #expect(feedBytes(any, [0x22, 0xC3, 0xA9, 0x22]).complete)                  // "é"
        #expect(feedBytes(any, [0x22, 0xF0, 0x9F, 0x98, 0x80, 0x22]).complete)      // an emoji
        for bad: [UInt8] in [[0x22, 0xC3, 0x28], [0x22, 0x80], [0x22, 0xC0, 0xAF], [0x22, 0xED, 0xA0, 0x80],
                             [0x22, 0xE0, 0x80, 0x80], [0x22, 0xF4, 0x90, 0x80, 0x80], [0x22, 0xF5], [0x22, 0xC3, 0x22]] {
            #expect(!feedBytes(any, bad).ok, "\(bad)")
        }
        // Keys too.
        #expect(!feedBytes(JSONSchema(anyOf: .object), [0x7B, 0x22, 0xFF]).ok)
        // A surrogate pair written as escapes is one character.
        let two = try schema(#"{"type": "string", "minLength": 2, "maxLength": 2}"#)
        #expect(!feed(two, #""\ud83d\ude00""#).complete)
        #expect(feed(two, #""\ud83d\ude00x""#).complete)
        #expect(feed(two, #""ab""#).complete)
    }

    @Test func keywordsBesideEnumAnyOfAndRefAreEnforcedOrRefused() throws {
        // enum values the other keywords exclude are dropped; none left is an error.
        let e = try schema(#"{"enum": ["abc", "a", 5, null], "type": ["string", "null"], "maxLength": 1}"#)
        #expect(feed(e, #""a""#).complete && feed(e, "null").complete)
        #expect(!feed(e, #""abc""#).complete && !feed(e, "5").ok)
        #expect(refusal(#"{"enum": ["abc"], "maxLength": 1}"#)?.contains("no enum/const value") == true)
        #expect(refusal(#"{"const": {"a": 1}, "properties": {"a": {}}}"#)?.contains("'properties' beside enum/const") == true)
        // A type beside anyOf narrows the branches; other keywords there are refused.
        let a = try schema(#"{"type": "string", "anyOf": [{"type": "integer"}, {"type": "string"}]}"#)
        #expect(!feed(a, "5").ok && feed(a, #""x""#).complete)
        let i = try schema(#"{"type": "integer", "anyOf": [{"type": "number"}, {"type": "null"}]}"#)
        #expect(feed(i, "5").complete && !feed(i, "5.5").complete)
        #expect(refusal(#"{"type": "string", "anyOf": [{"type": "integer"}]}"#)?.contains("no anyOf/oneOf branch") == true)
        #expect(refusal(#"{"anyOf": [{"type": "string"}], "maxLength": 3}"#)?.contains("'maxLength' beside anyOf") == true)
        #expect(refusal(##"{"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s", "maxLength": 2}"##)?.contains("beside $ref") == true)
        // Annotations beside them stay fine (what pydantic writes).
        _ = try schema(##"{"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s", "description": "d"}"##)
        _ = try schema(#"{"anyOf": [{"type": "string"}, {"type": "null"}], "default": null, "title": "T"}"#)
    }
}
