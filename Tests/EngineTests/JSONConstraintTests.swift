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
