import Testing

import ChatTemplate

/// Bad templates must throw clear errors (with positions) and never crash the process.
@Suite("Malformed templates")
struct MalformedTemplateTests {
    func syntaxError(_ source: String) -> ChatTemplateError? {
        do {
            _ = try ChatTemplate(source)
            return nil
        } catch let error as ChatTemplateError {
            return error
        } catch {
            return nil
        }
    }

    @Test("unclosed blocks name the missing end tag and the open block")
    func unclosedBlocks() throws {
        let forError = try #require(syntaxError("line one\n{% for x in y %}\n{{ x }}"))
        #expect(forError.kind == .syntax)
        #expect(
            forError.message
                == "Unexpected end of template. Jinja was looking for the following tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'."
        )
        #expect(forError.line == 3)

        let ifError = try #require(syntaxError("{% if a %}{% for x in y %}{% endfor %}"))
        #expect(ifError.message.contains("'elif' or 'else' or 'endif'"))
        #expect(ifError.message.contains("innermost block that needs to be closed is 'if'"))

        for source in [
            "{% macro m() %}body", "{% set x %}captured", "{% call m() %}", "{% filter upper %}x", "{% with a = 1 %}",
            "{% raw %}never closed", "{# comment", "{{ value ", "{% if x ", "{% for %}{% endfor %}",
        ] {
            let error = try #require(syntaxError(source), "expected a syntax error for \(source)")
            #expect(error.kind == .syntax, "\(source): \(error)")
            #expect(error.line != nil && error.column != nil, "\(source): \(error)")
        }
    }

    @Test("unknown filters, tests and tags are rejected at parse time")
    func unknownNames() throws {
        let filter = try #require(syntaxError("ok\n  {{ name | shout }}"))
        #expect(filter.kind == .syntax)
        #expect(filter.message == "No filter named 'shout'.")
        #expect(filter.line == 2 && filter.column == 13)

        let test = try #require(syntaxError("{% for m in ms %}{{ m is shouting }}{% endfor %}"))
        #expect(test.message == "No test named 'shouting'.")

        let tag = try #require(syntaxError("{% include 'other.jinja' %}"))
        #expect(tag.message.contains("not supported"))

        let unknownTag = try #require(syntaxError("{% if x %}{% frobnicate %}{% endif %}"))
        #expect(unknownTag.message.hasPrefix("Encountered unknown tag 'frobnicate'."))

        let mismatched = try #require(syntaxError("{% for x in y %}{% endif %}"))
        #expect(mismatched.message.contains("Encountered unknown tag 'endif'"))
    }

    @Test("unknown filters inside an if only fail when evaluated (like jinja2)")
    func softUnknownFilter() throws {
        let template = try ChatTemplate("{% if flag %}{{ x | shout }}{% endif %}done")
        #expect(try template.render(["flag": false]) == "done")
        #expect {
            try template.render(["flag": true])
        } throws: { error in
            (error as? ChatTemplateError)?.message == "No filter named 'shout' found."
        }
    }

    @Test("bad tokens and expressions")
    func badTokens() throws {
        for (source, fragment) in [
            ("{{ 'unterminated }}", "unexpected char"), ("{{ (1 }}", "unexpected '}', expected ')'"),
            ("{{ 1 + }}", "unexpected"), ("{{ ]", "unexpected ']'"), ("{{ a b }}", "expected token 'end of print statement'"),
            ("{{ }}", "Expected an expression"), ("{% set 1 = 2 %}", "can't assign"), ("{{ x @ y }}", "unexpected char '@'"),
            ("{% break %}", "outside loop"), ("{% macro m(a=1, b) %}{% endmacro %}", "non-default argument"),
            ("{{ '\\N{BULLET}' }}", "not supported"),
        ] {
            let error = try #require(syntaxError(source), "expected an error for \(source)")
            #expect(error.message.contains(fragment), "\(source): \(error.message)")
        }
    }

    @Test("runtime errors carry the line of the failing expression")
    func runtimeErrorLocation() throws {
        let template = try ChatTemplate("first\n{% for m in messages %}\n  {{ m.content + 1 }}\n{% endfor %}")
        #expect {
            try template.render(["messages": [["content": "text"]]])
        } throws: { error in
            guard let error = error as? ChatTemplateError else { return false }
            return error.kind == .type && error.line == 3
                && error.message == "can only concatenate str (not \"int\") to str"
        }
        let raising = try ChatTemplate("{{ raise_exception('Roles must alternate') }}")
        #expect {
            try raising.render([:])
        } throws: { error in
            guard let error = error as? ChatTemplateError else { return false }
            return error.kind == .raised && error.message == "Roles must alternate" && error.line == 1
        }
    }

    @Test("deep nesting and runaway recursion throw instead of exhausting the stack")
    func depthLimits() throws {
        let parentheses = String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000)
        #expect(syntaxError("{{ \(parentheses) }}")?.kind == .syntax)
        let ifs = String(repeating: "{% if true %}", count: 2000) + String(repeating: "{% endif %}", count: 2000)
        #expect(syntaxError(ifs)?.kind == .syntax)
        let nots = "{{ " + String(repeating: "not ", count: 5000) + "x }}"
        #expect(syntaxError(nots)?.kind == .syntax)
        let lists = "{{ " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + " }}"
        #expect(syntaxError(lists)?.kind == .syntax)

        let recursive = try ChatTemplate("{% macro loop_forever(n) %}{{ loop_forever(n + 1) }}{% endmacro %}{{ loop_forever(0) }}")
        #expect {
            try recursive.render([:])
        } throws: { error in
            (error as? ChatTemplateError)?.message.contains("recursion") == true
        }
        let tree = try ChatTemplate("{% for n in [x] recursive %}{{ loop([n]) }}{% endfor %}")
        #expect(throws: ChatTemplateError.self) { try tree.render(["x": 1]) }
    }

    @Test("values cannot grow without bound through namespaces")
    func namespaceGrowth() throws {
        let wrapping = try ChatTemplate(
            "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}")
        #expect {
            try wrapping.render([:])
        } throws: { error in
            (error as? ChatTemplateError)?.message.contains("nested too deeply") == true
        }
        // Doubling shares storage; measuring it must stay linear (2^60 logical nodes here).
        let doubling = try ChatTemplate(
            "{% set ns = namespace(x=[]) %}{% for i in range(60) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x|length }}")
        #expect(try doubling.render([:]) == "2")
        let cycle = try ChatTemplate("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{% set ns.again = ns %}")
        #expect(throws: ChatTemplateError.self) { try cycle.render([:]) }
    }

    @Test("sandbox limits")
    func sandbox() throws {
        #expect(throws: ChatTemplateError.self) { try ChatTemplate("{{ range(1000000)|list|length }}").render([:]) }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate("{{ 'x' * 100000000 }}").render([:]) }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate("{{ 9223372036854775807 + 1 }}").render([:]) }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate("{{ 2 ** 64 }}").render([:]) }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate("{{ messages.pop() }}").render(["messages": []]) }
        #expect(try ChatTemplate("{{ ''.__class__ }}").render([:]) == "")
        // Arithmetic and formatting at the edges of Int must throw, not trap.
        for source in [
            "{{ range(-9223372036854775807, 9223372036854775807)|length }}", "{{ '%99999999999999999999d' % 1 }}",
            "{{ '%*d' % (-9223372036854775807 - 1, 1) }}", "{{ '{:99999999999999999999}'.format(1) }}",
            "{{ (-9223372036854775807 - 1) // -1 }}", "{{ -(-9223372036854775807 - 1) }}", "{{ (-9223372036854775807 - 1)|abs }}",
            "{{ '{-1}'.format(1) }}", "{{ 9223372036854775807 * 2 }}",
        ] {
            #expect(throws: ChatTemplateError.self, "\(source)") { try ChatTemplate(source).render([:]) }
        }
        #expect(try ChatTemplate("{{ [1, 2, 3][1::9223372036854775807] }}").render([:]) == "[2]")
        #expect(try ChatTemplate("{{ range(9223372036854775805, 9223372036854775807)|list }}").render([:])
            == "[9223372036854775805, 9223372036854775806]")
    }

    /// A deterministic pseudo-random generator (64-bit LCG) for reproducible fuzzing.
    struct SeededGenerator {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
    }

    @Test("prefixes and mutations of real templates never crash", arguments: Goldens.templateNames)
    func fuzzRealTemplate(_ name: String) throws {
        let source = Array(try Goldens.readFile("templates/\(name).jinja").unicodeScalars)
        let context: [String: TemplateValue] = [
            "messages": [
                ["role": "system", "content": "sys"], ["role": "user", "content": "hi"],
                ["role": "assistant", "content": "yo", "tool_calls": [["function": ["name": "f", "arguments": ["a": 1]]]]],
                ["role": "tool", "content": "r"],
            ],
            "tools": [["type": "function", "function": ["name": "f", "parameters": ["type": "object"]]]],
            "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
        ]
        func attempt(_ scalars: [Unicode.Scalar]) {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            guard let template = try? ChatTemplate(String(view)) else { return }
            _ = try? template.render(context)
        }
        var generator = SeededGenerator(state: UInt64(truncatingIfNeeded: name.unicodeScalars.reduce(7) { $0 &* 31 &+ Int($1.value) }))
        let stride = max(1, source.count / 40)
        for length in Swift.stride(from: 0, through: source.count, by: stride) { attempt(Array(source[0..<length])) }
        let alphabet = Array("{}%#-+()[]'\"|.,:=~ \nabx019".unicodeScalars)
        for _ in 0..<40 {
            var mutated = source
            for _ in 0..<(1 + generator.next(3)) {
                let position = generator.next(max(1, mutated.count))
                switch generator.next(3) {
                case 0: if !mutated.isEmpty { mutated.remove(at: min(position, mutated.count - 1)) }
                case 1: mutated.insert(alphabet[generator.next(alphabet.count)], at: position)
                default: if !mutated.isEmpty { mutated[min(position, mutated.count - 1)] = alphabet[generator.next(alphabet.count)] }
                }
            }
            attempt(mutated)
        }
    }
}
