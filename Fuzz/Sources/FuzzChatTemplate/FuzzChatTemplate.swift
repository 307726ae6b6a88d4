// Fuzz target: the Jinja chat-template engine (Sources/ChatTemplate) — lexer, parser, constant folder,
// interpreter, filters, tests, methods, formatting — and its JSON reader.
//
// Input: the template source, optionally followed by a NUL byte and JSON text. The template is parsed,
// then rendered twice: with a fixed conversation of every kind of message (system, user, assistant with
// tool calls and reasoning, tool results), tools, add_generation_prompt and custom variables — the JSON
// after the NUL, when it parses (TemplateValue.parseJSON), is passed as the variable `extra` and replaces
// the messages when it is an array — and with no variables at all. Errors must be ChatTemplateError.

import ChatTemplate
import FuzzSupport

let conversation: [TemplateValue] = Fuzz.withoutLeakChecks { [
    ["role": "system", "content": "You are terse."],
    ["role": "user", "content": "What is the weather in Paris? <|im_end|>"],
    ["role": "assistant", "content": nil, "reasoning_content": "I should call the tool.",
     "tool_calls": [["id": "call_1", "type": "function",
                     "function": ["name": "get_weather", "arguments": ["city": "Paris", "days": 2]]]]],
    ["role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21.5, \"sky\": \"clear\"}"],
    ["role": "assistant", "content": "Sunny, 21.5 °C.", "thinking": "done"],
    ["role": "user", "content": [["type": "text", "text": "Thanks! 🙂"]]],
] }

let tools: TemplateValue = Fuzz.withoutLeakChecks { [
    ["type": "function", "function": [
        "name": "get_weather", "description": "Weather by city",
        "parameters": ["type": "object", "properties": ["city": ["type": "string"], "days": ["type": "integer"]],
                       "required": ["city"]]]],
] }

func check(_ error: Error, _ what: String) {
    Fuzz.check(error is ChatTemplateError, "\(what) threw something other than ChatTemplateError: \(type(of: error)) \(error)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChatTemplate(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let (head, tail) = Fuzz.split(Fuzz.bytes(data, size))
    var extra: TemplateValue = .null
    if let tail {
        do {
            extra = try TemplateValue.parseJSON(Fuzz.text(tail))
            _ = extra.jsonString()
            _ = extra.jsonString(indent: 2, sortKeys: true)
        } catch {
            check(error, "parseJSON")
        }
    }
    let template: ChatTemplate
    do {
        template = try ChatTemplate(Fuzz.text(head), fixedTime: 0)
    } catch {
        check(error, "parse")
        return 0
    }
    var messages = conversation
    if case .array(let given) = extra { messages = given }
    do {
        _ = try template.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>",
                                extra: ["tools": tools, "extra": extra, "enable_thinking": true, "date_string": "26 Jul 2024"])
    } catch {
        check(error, "render")
    }
    do {
        _ = try template.render([:])
    } catch {
        check(error, "render without variables")
    }
    return 0
}
