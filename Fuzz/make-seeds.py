#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets into Fuzz/Corpus/<Target>/ (committed).

The GGUF seeds come from the fixtures instead: `DS_FUZZ_WRITE_SEEDS=Fuzz/Corpus/GGUF FuzzGGUF`.
Chat templates of Tests/ChatTemplateTests/Fixtures/templates are added as seeds by Scripts/fuzz.sh
(not copied here). Input formats are described at the top of each target's source.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "Corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def nul(*parts):
    return b"\x00".join(p.encode("utf-8") if isinstance(p, str) else p for p in parts)


# --- Tokenizers: byte 0 picks the tokenizer (and bit 7 skipSpecial), the rest is text / token ids. ---
texts = [
    "Hello, world! It is a truth universally acknowledged.",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi <|im_end|>\n<|im_start|>assistant\n",
    "Café 🙂 naïve façade — “quotes” ½ 日本語のテキスト 한국어 Ελληνικά русский عربى",
    "def f(x):\n\treturn x ** 2  # 12345 + 678.9e-3\n\n\n    indented\r\n",
    "   leading and trailing spaces   ",
    "<start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n<tool>call</tool><s></s><unk>",
    "\u2581sentence\u2581piece\u2581marks and <0x41> byte spellings",
    "I'm you're we'll they've it's DON'T 1234567890 3.14159",
    "a\u0004b\u0000c\u007f\u00ad\u200b\ufeffz",
    "🙂🙂🙂 👨‍👩‍👧 🇫🇷 e\u0301 \U0001F600",
]
corpus_path = os.path.join(ROOT, "Tests/TokenizersTests/Fixtures/corpus.txt")
if os.path.exists(corpus_path):
    with open(corpus_path, encoding="utf-8") as f:
        lines = [l for l in f.read().split("\n\n") if len(l.encode()) > 40]
    # A spread of paragraphs from the multilingual corpus (it ends in other scripts).
    step = max(1, len(lines) // 12)
    texts += [l[:300] for l in lines[::step][:12]]
for target, selectors in [("TokenizerBPE", range(8)), ("TokenizerSPM", range(3))]:
    for i, text in enumerate(texts):
        write(target, "text-%02d" % i, bytes([selectors[i % len(selectors)]]) + text.encode("utf-8"))
    for s in selectors:
        ids = b"".join(int(v).to_bytes(2, "little") for v in [1, 72, 101, 108, 108, 2, 0, 300, 511, 65535, 216, 3])
        write(target, "ids-%d" % s, bytes([s | 0x80]) + ids)

# --- Chat templates: source, optionally NUL and JSON for `extra`. ---
templates = {
    "chatml": "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    "macros": "{% macro render(x, sep=', ') -%}{{ x | join(sep) }}{%- endmacro %}{% set ns = namespace(n=0, seen=[]) %}"
              "{% for m in messages if m.role != 'tool' %}{% set ns.n = ns.n + 1 %}{{ loop.index }}/{{ loop.length }}:"
              "{{ render([m.role, m.content | string | trim]) }}{% if not loop.last %}|{% endif %}{% endfor %}{{ ns.n }}",
    "filters": "{{ tools | tojson(indent=2) }}{{ messages | map(attribute='role') | unique | list | sort | join('/') }}"
               "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}{{ 'a,b,,c'.split(',') }}"
               "{{ '%05.2f|%-4s|%d' % (3.14159, 'x', 7) }}{{ '{} and {name}'.format(1, name='n') }}{{ 'Hi' * 3 }}",
    "tests": "{% for x in [1, 'a', none, [1], {'k': 1}, true, 2.5] %}{{ x is number }}{{ x is string }}{{ x is none }}"
             "{{ x is mapping }}{{ x is iterable }}{{ x is defined }}{% endfor %}{{ undefined_thing is defined }}",
    "methods": "{% set d = {'b': 2, 'a': 1} %}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.get('z', 9) }}"
               "{{ '  Text  '.strip().lower().upper().title().replace('T', 't') }}{{ 'abc'[::-1] }}{{ [1,2,3][1:] }}"
               "{{ 'x'.startswith('x') }}{{ 'a b'.split() }}{{ messages[0]['content'][:5] }}{{ (messages | last).role }}",
    "control": "{%- if messages[0].role == 'system' -%}{%- set sys = messages[0].content -%}{%- set rest = messages[1:] -%}"
               "{%- else -%}{%- set rest = messages -%}{%- endif -%}{%- for m in rest -%}{%- if m.tool_calls is defined -%}"
               "{%- for c in m.tool_calls -%}{{ c.function.name }}({{ c.function.arguments | tojson }}){%- endfor -%}"
               "{%- elif m.role == 'tool' -%}<r>{{ m.content }}</r>{%- else -%}{{ m.content }}{%- endif -%}{%- endfor -%}"
               "{%- if sys is defined -%}{{ sys }}{%- endif -%}",
    "raise": "{% if messages | length > 100 %}{{ raise_exception('too many') }}{% endif %}{{ strftime_now('%Y-%m-%d %H:%M') }}"
             "{% set x %}block {{ 1 + 2 * 3 // 2 % 5 ** 2 }}{% endset %}{{ x }}{% raw %}{{ not rendered }}{% endraw %}",
    "recursive": "{% for item in extra recursive %}[{{ item.name }}{% if item.children %}{{ loop(item.children) }}{% endif %}]{% endfor %}",
    "whitespace": "  {%- for m in messages %}\n    {{- m.content }}\n  {% endfor -%}  \n{# comment #}{{ bos_token ~ eos_token }}",
}
extras = {
    "recursive": '[{"name": "a", "children": [{"name": "b", "children": []}]}, {"name": "c"}]',
    "chatml": '[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "\\u00e9\\ud83d\\ude00"}]',
    "filters": '{"k": [1, 2.5, -3e10, true, null, "s"], "n": NaN, "i": -Infinity}',
}
for name, source in templates.items():
    write("ChatTemplate", name + ".jinja", nul(source, extras[name]) if name in extras else source)

# --- JSON Schema: schema, NUL, document steering the walk. ---
schemas = [
    ({"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}, "age": {"type": "integer"},
      "colour": {"enum": ["red", "green"]}, "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}},
      "required": ["name", "age"], "additionalProperties": False},
     '{"name": "Ann", "age": 30, "colour": "green", "tags": ["a", "b"]}'),
    ({"$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
      "type": "object", "properties": {"p": {"$ref": "#/$defs/Point"}, "label": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
      "required": ["p"]},
     '{"p": {"x": -1.5e3, "y": 0}, "label": null}'),
    ({"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
      "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"},
     '{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": [{"v": 4, "kids": []}]}]}'),
    ({"anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#"}}]}, "[1, [2, [3]], []]"),
    ({"type": "array", "prefixItems": [{"type": "boolean"}, {"const": {"a": [1, "x"]}}], "items": {"type": "null"}, "minItems": 2, "maxItems": 4},
     '[true, {"a": [1, "x"]}, null]'),
    ({"type": "object", "additionalProperties": {"type": "string", "minLength": 2}}, '{"k": "vv", "\\u00e9": "\\n\\t\\u0041"}'),
    ({"oneOf": [{"type": "string", "enum": ["a", "b\"c", "\u00e9"]}, {"type": "number"}, {"type": "object"}]}, '-0.5E+2'),
    ({"type": ["string", "null"], "minLength": 1, "maxLength": 3}, '"\\ud83d\\ude00ab"'),
    ({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "object", "properties": {
      "c": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}}}}}}}, '{"a": {"b": {"c": [[1, 2], [], [3]]}}}'),
    (True, '{"any": ["thing", 1, false, null, {"x": {}}]}'),
    ({"type": "object", "properties": {"location": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
      "required": ["location"]}, '{"location": "Paris", "unit": "celsius"}'),
    ({"type": "string", "pattern": "^a"}, '"a"'),
]
for i, (schema, doc) in enumerate(schemas):
    write("JSONSchema", "schema-%02d" % i, nul(json.dumps(schema, ensure_ascii=False), doc))

# --- Server: request body, optionally NUL and the model's output to parse tool calls from. ---
weather = {"type": "function", "function": {"name": "get_weather", "description": "Weather <|im_start|> by city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                          "required": ["city"]}}}
bodies = [
    ({"model": "tiny", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <|im_end|><|im_start|>system"}],
      "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": 1, "stop": ["\n\n", "END"],
      "presence_penalty": 0.5, "frequency_penalty": 0.2, "repeat_penalty": 1.1, "stream": True, "stream_options": {"include_usage": True},
      "logprobs": True, "top_logprobs": 3}, None),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris?"}]}], "tools": [weather],
      "tool_choice": "required"}, '{"name": "get_weather", "arguments": {"city": "Paris"}}'),
    ({"messages": [{"role": "user", "content": "weather?"},
                   {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
                   {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 3}"}, {"role": "developer", "content": "x"}],
      "tools": [weather], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
     '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'),
    ({"messages": [{"role": "user", "content": "json please"}], "response_format": {"type": "json_schema", "json_schema": {"name": "x",
      "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}, "max_completion_tokens": 100}, None),
    ({"messages": [{"role": "user", "content": "obj"}], "response_format": {"type": "json_object"}, "n": 1, "ignore_eos": False}, None),
    ({"model": "tiny", "prompt": "Once upon a time<|im_end|>", "max_tokens": 8, "logprobs": 2, "echo": False}, None),
    ({"prompt": ["just one"], "temperature": 0}, None),
    ({"model": "tiny", "max_tokens": 64, "system": [{"type": "text", "text": "sys"}], "stop_sequences": ["x"],
      "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [{"type": "text", "text": "Hello"},
                   {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Rome"}}]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                                                {"type": "text", "text": "thanks <|im_start|>"}]}],
      "tools": [{"name": "get_weather", "description": "d", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
      "tool_choice": {"type": "any"}, "temperature": 0.5, "stream": True}, '{"name": "get_weather", "arguments": {"city": "Rome"}}'),
    ({"max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "tools": [{"name": "a.b-c_d", "input_schema": {}}],
      "tool_choice": {"type": "tool", "name": "a.b-c_d"}}, None),
    ({"messages": [], "max_tokens": -1, "temperature": 9, "model": "other"}, None),
    ({"messages": [{"role": "user", "content": "deep"}], "tools": [{"type": "function", "function": {"name": "f",
      "parameters": {"type": "object", "properties": {"l": {"type": "array", "items": {"$ref": "#"}}}}}}], "tool_choice": "auto"},
     'text before {"name": "f", "arguments": {"l": []}}'),
    # The Responses API: items, flat function tools, text.format.
    ({"model": "tiny", "instructions": "Be brief <|im_end|>", "input": [{"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
      {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"},
      {"type": "function_call_output", "call_id": "c1", "output": "{\"temp\": 3}"}, {"type": "reasoning", "summary": []}],
      "tools": [{"type": "function", "name": "get_weather", "parameters": weather["function"]["parameters"]}],
      "tool_choice": {"type": "function", "name": "get_weather"}, "max_output_tokens": 32, "stream": True, "store": False},
     '{"name": "get_weather", "arguments": {"city": "Oslo"}}'),
    ({"input": "json please", "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object",
      "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}, "metadata": {"k": "v"}, "previous_response_id": "resp_x"}, None),
]
for i, (body, output) in enumerate(bodies):
    text = json.dumps(body, ensure_ascii=False)
    write("Server", "body-%02d" % i, nul(text, output) if output is not None else text)

total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(CORPUS) for f in fs)
print("Fuzz/Corpus: %d bytes" % total, file=sys.stderr)
