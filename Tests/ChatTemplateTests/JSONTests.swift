import Testing

import ChatTemplate

@Suite("Ordered JSON parsing and Python-style dumping")
struct JSONTests {
    @Test("object key order is preserved")
    func keyOrder() throws {
        let value = try TemplateValue.parseJSON(#"{"zeta": 1, "alpha": {"y": [], "b": {}}, "mid": null}"#)
        let object = try #require(value.objectValue)
        #expect(object.keys == ["zeta", "alpha", "mid"])
        #expect(object["alpha"]?.objectValue?.keys == ["y", "b"])
        #expect(value.jsonString() == #"{"zeta": 1, "alpha": {"y": [], "b": {}}, "mid": null}"#)
    }

    @Test("numbers keep int versus float")
    func numbers() throws {
        let value = try TemplateValue.parseJSON("[0, -12, 1.0, 2.5e3, 1E-7, 123456789012345678901234567890, -0.0]")
        #expect(
            value
                == .array([.int(0), .int(-12), .double(1.0), .double(2500), .double(1e-7), .double(1.2345678901234568e29), .double(-0.0)]))
        #expect(value.jsonString() == "[0, -12, 1.0, 2500.0, 1e-07, 1.2345678901234568e+29, -0.0]")
        let special = try TemplateValue.parseJSON("[NaN, Infinity, -Infinity]")
        #expect(special.jsonString() == "[NaN, Infinity, -Infinity]")
    }

    @Test("string escapes, surrogate pairs and unicode")
    func strings() throws {
        let value = try TemplateValue.parseJSON(#""a\"b\\c\/d\n\t\u00e9\ud83c\udf0d\u0001 é🌍""#)
        #expect(value == .string("a\"b\\c/d\n\té🌍\u{01} é🌍"))
        #expect(value.jsonString() == #""a\"b\\c/d\n\té🌍\u0001 é🌍""#)
        #expect(try TemplateValue.parseJSON(#""\ud800x""#) == .string("\u{FFFD}x"))
    }

    @Test("duplicate keys keep the first position and the last value")
    func duplicates() throws {
        let value = try TemplateValue.parseJSON(#"{"a": 1, "b": 2, "a": 3}"#)
        #expect(value.objectValue?.keys == ["a", "b"])
        #expect(value["a"] == .int(3))
    }

    @Test("indent and sort_keys follow json.dumps")
    func indentation() throws {
        let value: TemplateValue = ["b": [1, ["x": true]], "a": [:], "c": []]
        #expect(
            value.jsonString(indent: 2)
                == "{\n  \"b\": [\n    1,\n    {\n      \"x\": true\n    }\n  ],\n  \"a\": {},\n  \"c\": []\n}")
        #expect(value.jsonString(sortKeys: true) == #"{"a": {}, "b": [1, {"x": true}], "c": []}"#)
    }

    @Test("malformed JSON throws with a position")
    func errors() throws {
        for text in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"unterminated", "[1] 2", "{\"a\":1,}", "01", "\"\\x\"", "\"\u{01}\""] {
            #expect(throws: ChatTemplateError.self, "\(text)") { try TemplateValue.parseJSON(text) }
        }
        do {
            _ = try TemplateValue.parseJSON("{\n  \"a\": [1, 2,\n  ]\n}")
            Issue.record("expected an error")
        } catch let error as ChatTemplateError {
            #expect(error.kind == .json && error.line == 3 && error.column == 3)
        }
        let deep = String(repeating: "[", count: 100_000)
        #expect(throws: ChatTemplateError.self) { try TemplateValue.parseJSON(deep) }
    }

    @Test("parsed tools render through tojson exactly like Python")
    func toolsRoundTrip() throws {
        let tools = try TemplateValue.parseJSON(
            #"[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "max": {"type": "number", "default": 2.50}}}}}]"#
        )
        let template = try ChatTemplate("{% for t in tools %}{{ t | tojson }}\n{{ t.function | tojson(indent=1) }}{% endfor %}")
        #expect(
            try template.render(["tools": tools])
                == #"{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "max": {"type": "number", "default": 2.5}}}}}"#
                + "\n{\n \"name\": \"get_weather\",\n \"parameters\": {\n  \"type\": \"object\",\n  \"properties\": {\n   \"city\": {\n    \"type\": \"string\"\n   },\n   \"max\": {\n    \"type\": \"number\",\n    \"default\": 2.5\n   }\n  }\n }\n}")
    }
}
