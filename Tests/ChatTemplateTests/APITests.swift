import Testing

import ChatTemplate

@Suite("Public API")
struct APITests {
    static let chatML = """
        {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
        """

    @Test("convenience render adds the transformers variables")
    func convenience() throws {
        let template = try ChatTemplate(Self.chatML)
        let prompt = try template.render(
            messages: [["role": "user", "content": "Hi"]], addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
        #expect(prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")

        let probe = try ChatTemplate(
            "{{ bos_token }}|{{ eos_token }}|{{ tools is none }}|{{ documents is none }}|{{ add_generation_prompt }}|{{ custom }}|{{ tools|length if tools is not none else '-' }}"
        )
        #expect(
            try probe.render(messages: [], addGenerationPrompt: false, bosToken: "<s>", eosToken: "</s>", extra: ["custom": 7])
                == "<s>|</s>|True|True|False|7|-")
        #expect(
            try probe.render(
                messages: [], addGenerationPrompt: true, bosToken: "", eosToken: "", extra: ["tools": [["a": 1]], "custom": "x"])
                == "||False|True|True|x|1")
    }

    @Test("messages are normalized like apply_chat_template")
    func normalization() throws {
        let normalized = try ChatTemplate.normalizeMessages([
            ["role": "assistant", "content": nil, "tool_calls": [["id": "1"]]],
            ["role": "assistant", "content": "x", "reasoning": "because"],
            ["role": "assistant", "thinking": "t", "content": "y", "reasoning_content": nil],
        ])
        #expect(normalized[0] == ["role": "assistant", "tool_calls": [["id": "1"]]])
        #expect(normalized[0].objectValue?.keys == ["role", "tool_calls"])
        #expect(normalized[1].objectValue?.keys == ["thinking", "role", "content", "reasoning", "reasoning_content"])
        #expect(normalized[1]["thinking"] == "because" && normalized[1]["reasoning_content"] == "because")
        #expect(normalized[2].objectValue?.keys == ["thinking", "role", "content", "reasoning_content"])
        #expect(normalized[2]["reasoning_content"] == "t")
        #expect(throws: ChatTemplateError.self) { try ChatTemplate.normalizeMessages(["not a dict"]) }
    }

    @Test("strftime_now reads the local clock")
    func strftimeNow() throws {
        let year = try ChatTemplate("{{ strftime_now('%Y') }}").render([:])
        #expect(year.count == 4 && Int(year)! >= 2025)
        let frozen = try ChatTemplate("{{ strftime_now('%d %b %Y') }}", fixedTime: 0).render([:])
        #expect(frozen == "01 Jan 1970")
    }

    @Test("one template renders from many tasks at once")
    func concurrentRendering() async throws {
        let template = try ChatTemplate(Self.chatML)
        let results = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<16 {
                group.addTask {
                    try template.render(
                        messages: [["role": "user", "content": .string("n\(index)")]], addGenerationPrompt: false,
                        bosToken: "", eosToken: "")
                }
            }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(Set(results).count == 16)
    }

    @Test("errors describe themselves")
    func errorDescription() {
        let error = ChatTemplateError(.syntax, "No filter named 'x'.", line: 3, column: 7)
        #expect(error.description == "syntax error: No filter named 'x'. (line 3, column 7)")
    }

    @Test("state never leaks between renders")
    func renderIsolation() throws {
        let template = try ChatTemplate("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}")
        #expect(try template.render(["messages": [1, 2, 3]]) == "3")
        #expect(try template.render(["messages": [1]]) == "1")
    }
}
