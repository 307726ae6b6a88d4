/// A parsed Hugging Face chat template (`tokenizer.chat_template`), rendered like transformers'
/// `apply_chat_template(..., tokenize=False)`: jinja2's ImmutableSandboxedEnvironment with
/// `trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`, `strftime_now`, `namespace`,
/// and transformers' `tojson` (no HTML escaping, `indent`/`separators`/`sort_keys` options).
///
/// ```swift
/// let template = try ChatTemplate(source)
/// let prompt = try template.render(messages: [["role": "user", "content": "Hi"]],
///                                  addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
/// ```
public struct ChatTemplate: Sendable {
    /// Deepest nesting of blocks/expressions a template may use (deeper ones are refused, not crashed on).
    public static let maximumNesting = Parser.maximumNesting

    private let body: [Statement]
    /// Seconds since the epoch used by `strftime_now` instead of the clock (UTC), for reproducible tests.
    let fixedTime: Int?

    /// Parses `source` once. Malformed templates (unclosed blocks, bad tokens, unknown tags, filters
    /// or tests outside `if` branches) throw `ChatTemplateError` of kind `.syntax` with line/column.
    public init(_ source: String) throws {
        self.body = try Parser.parse(source)
        self.fixedTime = nil
    }

    /// fixedTime: seconds since the epoch that `strftime_now` reports (reproducible prompts, tests).
    public init(_ source: String, fixedTime: Int?) throws {
        self.body = try Parser.parse(source)
        self.fixedTime = fixedTime
    }

    /// Renders with exactly these template variables (nothing is added; undefined names are undefined).
    /// Errors: `.raised` when the template calls `raise_exception`, otherwise runtime kinds.
    public func render(_ context: [String: TemplateValue]) throws -> String {
        try Interpreter(fixedTime: fixedTime).render(body, context: context)
    }

    /// Renders a conversation the way `tokenizer.apply_chat_template` does:
    /// * message keys whose value is `null` are dropped (transformers' `_normalize_chat_messages`);
    /// * a message's reasoning (`reasoning_content`, else `thinking`, else `reasoning`) is copied to
    ///   `thinking` (first key) and `reasoning_content` (transformers' `_alias_reasoning_fields`);
    /// * variables: `messages`, `tools` (null unless in `extra`), `documents` (null unless in `extra`),
    ///   `add_generation_prompt`, `bos_token`, `eos_token`, then every `extra` entry (which wins).
    public func render(
        messages: [TemplateValue], addGenerationPrompt: Bool, bosToken: String, eosToken: String,
        extra: [String: TemplateValue] = [:]
    ) throws -> String {
        var context: [String: TemplateValue] = [
            "messages": .array(try Self.normalizeMessages(messages)),
            "tools": .null,
            "documents": .null,
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
        ]
        for (key, value) in extra { context[key] = value }
        return try render(context)
    }

    /// Names under which a message's reasoning may arrive; the first non-null one wins.
    static let reasoningFields = ["reasoning_content", "thinking", "reasoning"]

    /// transformers' message preprocessing (see `render(messages:...)`).
    public static func normalizeMessages(_ messages: [TemplateValue]) throws -> [TemplateValue] {
        try messages.map { message in
            guard case .object(let object) = message else {
                throw ChatTemplateError(.type, "Chat messages should be dicts, but got \(Value(message).repr).")
            }
            var cleaned = TemplateObject()
            for (key, value) in object.entries where value != .null { cleaned[key] = value }
            guard let reasoning = reasoningFields.lazy.compactMap({ cleaned[$0] }).first else {
                return .object(cleaned)
            }
            var aliased = TemplateObject()
            aliased["thinking"] = reasoning
            for (key, value) in cleaned.entries { aliased[key] = value }
            aliased["reasoning_content"] = reasoning
            return .object(aliased)
        }
    }
}
