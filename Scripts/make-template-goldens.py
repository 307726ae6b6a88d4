#!/usr/bin/env python3
"""Render the chat-template fixtures with transformers' own renderer and store the goldens.

Usage (from the package root):
    /tmp/refvenv/bin/python Scripts/make-template-goldens.py

Reads   Tests/ChatTemplateTests/Fixtures/templates/*.jinja
Writes  Tests/ChatTemplateTests/Fixtures/template-goldens.json

The renderer is `transformers.utils.chat_template_utils.render_jinja_template`, called the way
`PreTrainedTokenizerBase.apply_chat_template` calls it (messages normalized by
`_normalize_chat_messages`, special tokens merged under the caller's kwargs). The exact keyword
arguments that reach `Template.render` are captured and checked against the context the Swift side
assembles (see `swift_context` below), so the fixture documents that assembly precisely.

`strftime_now` reads a frozen clock (2025-01-15 10:30:00) so that goldens are reproducible; the Swift
tests inject the same instant.
"""

import copy
import datetime as real_datetime
import json
import os
import sys

import jinja2
from transformers.utils import chat_template_utils as ctu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "ChatTemplateTests", "Fixtures")
TEMPLATES = os.path.join(FIXTURES, "templates")
OUTPUT = os.path.join(FIXTURES, "template-goldens.json")

FROZEN_NOW = real_datetime.datetime(2025, 1, 15, 10, 30, 0)


class FrozenDatetime(real_datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return FROZEN_NOW


# `strftime_now` is defined inside the compile function and reads the module-level `datetime` name.
ctu.datetime = FrozenDatetime

# Special tokens per template: what `tokenizer.special_tokens_map` would give (bos/eos only).
TEMPLATE_TOKENS = {
    "smollm2": ("<|im_start|>", "<|im_end|>"),
    "smollm3": ("", "<|im_end|>"),
    "qwen2.5": ("", "<|im_end|>"),
    "qwen3": ("", "<|im_end|>"),
    "llama3.1": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama3.2": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama4": ("<|begin_of_text|>", "<|eot|>"),
    "deepseek-v3": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseek-v3.1": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseek-r1-distill-qwen": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "glm-4.5": ("", "<|endoftext|>"),
    "glm-4.6": ("", "<|endoftext|>"),
    "gemma2": ("<bos>", "<eos>"),
    "gemma3": ("<bos>", "<eos>"),
    "mistral-nemo": ("<s>", "</s>"),
    "phi3.5": ("<s>", "<|endoftext|>"),
    "gpt-oss": ("<|startoftext|>", "<|return|>"),
    # More real templates (llama.cpp's models/templates) for broader Jinja coverage.
    "qwen3-coder": ("", "<|im_end|>"),
    "qwen3.5": ("", "<|im_end|>"),
    "nemotron-nano-v2": ("<SPECIAL_10>", "<SPECIAL_11>"),
    "granite-3.3": ("<|end_of_text|>", "<|end_of_text|>"),
    "granite-4.0": ("<|end_of_text|>", "<|end_of_text|>"),
    "hermes-3-tool-use": ("<|begin_of_text|>", "<|im_end|>"),
    "functionary-v3.2": ("<|begin_of_text|>", "<|eot_id|>"),
    "kimi-k2": ("[BOS]", "[EOS]"),
    "kimi-k2-thinking": ("[BOS]", "[EOS]"),
    "minimax-m2": ("]~!b[", "[e~["),
    "command-r7b": ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    "mistral-small-3.2": ("<s>", "</s>"),
    "deepseek-v3.2": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "gemma4": ("<bos>", "<eos>"),
    "apertus": ("<s>", "</s>"),
    "seed-oss": ("<seed:bos>", "<seed:eos>"),
    "lfm2": ("<|startoftext|>", "<|im_end|>"),
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web — ünïcode & <xml> welcome.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "number", "default": 0.25}},
            "required": ["query"],
        },
    },
}
TOOLS = [WEATHER_TOOL, SEARCH_TOOL]
TOOL_RESULT = '{"temperature": 21.5, "condition": "sunny"}'


def tool_call(call_id, name, arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_conversation(arguments_as_string, with_system, final_answer, content=None, parallel=False):
    args = {"city": "Paris", "unit": "celsius", "days": 2}
    if arguments_as_string:
        args = json.dumps(args)
    calls = [tool_call("call_1", "get_weather", args)]
    if parallel:
        more = {"query": "Paris events", "limit": 3}
        calls.append(tool_call("call_2", "search", json.dumps(more) if arguments_as_string else more))
    messages = []
    if with_system:
        messages.append({"role": "system", "content": "You are a weather bot."})
    messages.append({"role": "user", "content": "What's the weather in Paris?"})
    messages.append({"role": "assistant", "content": content, "tool_calls": calls})
    messages.append({"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": TOOL_RESULT})
    if parallel:
        messages.append({"role": "tool", "tool_call_id": "call_2", "name": "search", "content": "No events found."})
    if final_answer:
        messages.append({"role": "assistant", "content": "It is 21.5 °C and sunny in Paris."})
    return messages


SYSTEM = {"role": "system", "content": "You are a helpful assistant."}

# name -> (messages, tools, extra kwargs)
CONVERSATIONS = {
    "single_user": ([{"role": "user", "content": "Hello!"}], None, {}),
    "system_user_assistant_user": (
        [
            SYSTEM,
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "2+2 equals 4."},
            {"role": "user", "content": "And 3+3?"},
        ],
        None,
        {},
    ),
    "multi_turn": (
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a joke."},
            {"role": "assistant", "content": "Why did the chicken cross the road?"},
            {"role": "user", "content": "Why?"},
        ],
        None,
        {},
    ),
    "ends_with_assistant": (
        [SYSTEM, {"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}],
        None,
        {},
    ),
    "unicode_and_whitespace": (
        [
            {"role": "system", "content": "Réponds en français. 日本語もOK 🎉\n"},
            {
                "role": "user",
                "content": "Line one\nLine two\n\n  indented \"double\" and 'single' quotes, backslash \\ tab\t end",
            },
            {"role": "assistant", "content": "  Sure — “curly” quotes & <tags> {braces} {{ not jinja }} {% raw %}  \n"},
            {"role": "user", "content": "Emoji 👩‍👩‍👧 and combining e\u0301 vs é, NBSP\u00a0here\r\nCRLF"},
        ],
        None,
        {},
    ),
    "empty_content": (
        [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}, {"role": "user", "content": " "}],
        None,
        {},
    ),
    "assistant_first": (
        [{"role": "assistant", "content": "I speak first."}, {"role": "user", "content": "Ok."}],
        None,
        {},
    ),
    "two_system_messages": (
        [SYSTEM, {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        None,
        {},
    ),
    "content_parts": (
        [
            {"role": "system", "content": [{"type": "text", "text": "System as parts."}]},
            {"role": "user", "content": [{"type": "text", "text": "Part one."}, {"type": "text", "text": " Part two."}]},
        ],
        None,
        {},
    ),
    "tools_dict_arguments": (tool_conversation(False, True, True), TOOLS, {}),
    "tools_string_arguments": (tool_conversation(True, True, True), TOOLS, {}),
    "tools_no_system_pending": (tool_conversation(False, False, False), TOOLS, {}),
    "tools_parallel_calls": (tool_conversation(False, True, True, content="Let me check.", parallel=True), TOOLS, {}),
    "tools_parallel_string_calls": (tool_conversation(True, False, False, parallel=True), TOOLS, {}),
    "tools_only_defined": ([SYSTEM, {"role": "user", "content": "Any tools?"}], TOOLS, {}),
    "tools_nine_char_ids": (
        [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [tool_call("abcDEF123", "get_weather", {"city": "Oslo"})],
            },
            {"role": "tool", "tool_call_id": "abcDEF123", "name": "get_weather", "content": "cold"},
            {"role": "assistant", "content": "It is cold."},
            {"role": "user", "content": "Thanks"},
        ],
        TOOLS,
        {},
    ),
    "tools_in_system_message": (tool_conversation(False, True, False), TOOLS, {"tools_in_user_message": False}),
    "reasoning_with_tools": (
        [
            {"role": "system", "content": "Think, then act."},
            {"role": "user", "content": "Weather in Rome?"},
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "I should call the tool.",
                "tool_calls": [tool_call("call_9", "get_weather", {"city": "Rome"})],
            },
            {"role": "tool", "tool_call_id": "call_9", "content": "warm"},
            {"role": "assistant", "content": "Warm in Rome.", "reasoning_content": "The tool said warm."},
        ],
        TOOLS,
        {"enable_thinking": True},
    ),
    "reasoning_content": (
        [
            {"role": "user", "content": "What is 17*3?"},
            {"role": "assistant", "content": "51", "reasoning_content": "17*3 = 51."},
            {"role": "user", "content": "And 17*4?"},
            {"role": "assistant", "content": "68", "reasoning_content": "\n17*4 = 68.\n"},
        ],
        None,
        {},
    ),
    "inline_think_tags": (
        [
            {"role": "user", "content": "Think first."},
            {"role": "assistant", "content": "<think>\nLet me think.\n</think>\n\nDone thinking."},
            {"role": "user", "content": "Again."},
        ],
        None,
        {},
    ),
    "enable_thinking_false": (
        [SYSTEM, {"role": "user", "content": "Quick answer please."}],
        None,
        {"enable_thinking": False},
    ),
    "enable_thinking_true": (
        [{"role": "user", "content": "Think hard."}],
        None,
        {"enable_thinking": True},
    ),
    "custom_kwargs": (
        [{"role": "user", "content": "Hello"}],
        None,
        {"date_string": "01 Jan 2030", "reasoning_effort": "high", "thinking": True},
    ),
}

# Small templates exercising one Jinja feature each: (name, template source, context).
# Rendered with the same environment transformers builds; errors are recorded with their phase.
FEATURE_CONTEXT = {
    "d": {"b": 2, "a": 1, "c": None},
    "people": [
        {"name": "Ann", "age": 31, "role": "user"},
        {"name": "bob", "age": 25, "role": "assistant", "tags": ["x"]},
        {"name": "Cid", "age": 31, "role": "user"},
    ],
    "tree": [{"name": "a", "children": [{"name": "b", "children": []}, {"name": "c"}]}, {"name": "d"}],
    "text": "  Hello, World!  ",
    "nested": {"list": [1, 2.5, "three", None, True, {"k": "v"}], "unicode": "héllo 🌍 \"q\" \\ \n\t\u0001"},
    "empty": [],
    "number": 42,
}

FEATURE_CASES = [
    # whitespace control, trim_blocks, lstrip_blocks, comments, raw, newline handling
    ("ws_lstrip_trim", "  {% if true %}\n  yes\n  {% endif %}\nafter\n", {}),
    ("ws_dash_both", "a  {{- ' b ' -}}  c", {}),
    ("ws_dash_loop", "{%- for x in [1, 2] -%}\n {{ x }} \n{%- endfor %}", {}),
    ("ws_comments", "{# comment #}\nline\n  {# indented comment #}\nnext {#- strip -#}   end", {}),
    ("ws_plus_modifiers", "  {%+ if true %}x{% endif +%}\n y", {}),
    ("ws_raw", "{% raw %}{{ not rendered }} {% if %}{% endraw %}!", {}),
    ("ws_raw_dash", "a {%- raw -%}  raw  {%- endraw -%}  b", {}),
    ("ws_trailing_newline", "x\n{% if true %}\ny\n{% endif %}\n", {}),
    ("ws_crlf", "a\r\nb\rc{% if true %}\r\nd{% endif %}", {}),
    ("ws_variable_no_trim", "{{ 'a' }}\n{{ 'b' }}\n  {{ 'c' }}", {}),
    ("ws_tab_before_dash", " \t{%- if true %}x{% endif %}", {}),
    ("ws_lstrip_after_expression", "{{ 'v' }}   {% if true %}x{% endif %}", {}),
    ("ws_nested_blocks", "{% for i in [1, 2] %}\n    {% if i == 2 %}\n        two\n    {% else %}\n        other\n    {% endif %}\n{% endfor %}\n", {}),
    # literals and printing (Python str/repr)
    ("print_numbers", "{{ 1 }}|{{ 1.0 }}|{{ 1e20 }}|{{ 1.5e-7 }}|{{ 0.1 + 0.2 }}|{{ 10 / 4 }}|{{ 10 // 4 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 1_000 }}|{{ 0x1F }}|{{ 1e16 }}|{{ 123456789.0 * 1000 }}|{{ -0.0 }}|{{ 7.5 // 2 }}|{{ -7.5 % 2 }}", {}),
    ("print_python_repr", "{{ none }}|{{ None }}|{{ true }}|{{ False }}|{{ [1, 'a', none, true, 1.5] }}|{{ {'a': 1, 'b': [2]} }}|{{ (1,) }}|{{ (1, 2) }}|{{ () }}|{{ nested }}", {}),
    ("print_string_repr", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'a\\nb\\tc', '\\\\', 'é🌍', '\\x00\\x7f\\u200b'] }}", {}),
    ("string_escapes", "{{ 'tab\\there' }}|{{ \"q\\\"q\" }}|{{ 'u\\u00e9x\\x41o\\101' }}|{{ 'keep\\d' }}|{{ 'a' 'b' \"c\" }}", {}),
    ("undefined_printing", "[{{ missing }}][{{ missing is defined }}][{{ d.zzz }}][{{ d.zzz is defined }}][{{ none.attr }}]", {}),
    ("subscripts", "{{ 'abc'[0] }}{{ 'abc'[-1] }}[{{ 'abc'[5] }}]{{ [1, 2, 3][1:] }}{{ [1, 2, 3][::-1] }}{{ 'hello'[1:3] }}{{ 'hello'[::2] }}{{ 'hello'[-3:] }}{{ [1, 2, 3][:-1] }}{{ people.1.name }}{{ people[0]['name'] }}{{ d['a'] }}[{{ d['nope'] }}]", {}),
    ("concat", "{{ 'a' ~ 1 ~ none ~ [1] ~ missing ~ 2.0 }}", {}),
    ("conditional_expr", "[{{ 1 if false }}]|{{ 'y' if true else 'n' }}|{{ (1 if missing else 2) + 1 }}|{{ 'a' if 0 else 'b' if 1 else 'c' }}", {}),
    ("comparisons", "{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ 1 == 1.0 }}{{ true == 1 }}{{ 'a' < 'b' }}{{ [1, 2] < [1, 3] }}{{ 'a' in 'cat' }}{{ 'x' not in ['x'] }}{{ 'k' in {'k': 1} }}{{ none == none }}{{ missing == missing }}{{ 2 >= 2.0 }}{{ 'B' <= 'a' }}", {}),
    ("logic_values", "{{ 0 or 'default' }}|{{ 1 and 'x' }}|{{ not none }}|{{ [] or {} }}|{{ '' and 1 }}|{{ not 1 == 2 }}|{{ missing or 'fallback' }}", {}),
    ("repetition", "{{ 'ab' * 3 }}|{{ [0] * 2 }}|{{ 3 * 'x' }}|{{ 'z' * 0 }}|{{ true + 1 }}|{{ -number }}|{{ +1.5 }}", {}),
    ("unary_filter_precedence", "{{ -1|abs }}|{{ (-1)|abs }}|{{ -number|string }}|{{ 2 ** 3 ** 2 }}|{{ 10 - 2 - 3 }}|{{ 2 * 3 + 4 }}", {}),
    # string methods
    ("str_strip", "[{{ text.strip() }}][{{ text.lstrip() }}][{{ text.rstrip() }}][{{ 'xxhixx'.strip('x') }}][{{ '\\u00a0nb\\u2003'.strip() }}]", {}),
    ("str_split", "{{ 'a,b,,c'.split(',') }}{{ ' a  b \\n c '.split() }}{{ 'a,b,c'.split(',', 1) }}{{ 'a,b,c'.rsplit(',', 1) }}{{ 'a\\nb\\r\\nc\\n'.splitlines() }}{{ 'x'.split('x') }}{{ 'line1\\nline2'.splitlines(true) }}", {}),
    ("str_predicates", "{{ 'Hello'.startswith('He') }}{{ 'Hello'.startswith(('x', 'H')) }}{{ 'Hello'.endswith('lo') }}{{ 'abc'.startswith('b', 1) }}{{ '123'.isdigit() }}{{ 'abc'.isalpha() }}{{ 'ABC'.isupper() }}{{ 'abc'.islower() }}{{ ' '.isspace() }}{{ 'Title Case'.istitle() }}", {}),
    ("str_case", "{{ 'hello wORLD-foo bar(baz'.title() }}|{{ 'hello wORLD-foo bar(baz'|title }}|{{ 'hELLO'.capitalize() }}|{{ 'straße'.upper() }}|{{ 'ÀÉÎ'.lower() }}|{{ 'aBc'.swapcase() }}|{{ \"they're bill's\"|title }}", {}),
    ("str_search", "{{ 'banana'.find('an') }}{{ 'banana'.rfind('an') }}{{ 'banana'.find('x') }}{{ 'banana'.count('a') }}{{ 'banana'.index('n') }}{{ 'banana'.replace('a', 'o', 2) }}{{ 'abc'.replace('', '-') }}", {}),
    ("str_misc", "{{ '-'.join(['a', 'b']) }}|{{ 'ab'.center(6, '*') }}|{{ '42'.zfill(5) }}|{{ 'a=b=c'.partition('=') }}|{{ 'a=b=c'.rpartition('=') }}|{{ 'prefix_x'.removeprefix('prefix_') }}|{{ 'x.txt'.removesuffix('.txt') }}|{{ 'ab'.ljust(4, '.') }}|{{ 'ab'.rjust(4) }}", {}),
    ("str_format_method", "{{ '{} and {}'.format('a', 1) }}|{{ '{1}{0}'.format('x', 'y') }}|{{ '{name}!'.format(name='Bo') }}|{{ '{:>5}|{:<4}|{:^7}|{:.2f}|{:,}|{:05d}|{!r}'.format('a', 'b', 'mid', 3.14159, 1234567, 42, 'q') }}|{{ '{{literal}}'.format() }}", {}),
    # dict methods
    ("dict_methods", "{{ d.get('a') }}|{{ d.get('zz') }}|{{ d.get('zz', 'fb') }}|{{ d.keys()|list }}|{{ d.values()|list }}|{{ d.items()|list }}|{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {}),
    ("dict_literal_order", "{{ {'z': 1, 'a': 2, 'z': 3} }}|{{ dict(b=1, a=2) }}|{{ dict({'x': 1}, y=2) }}", {}),
    # loops
    ("loop_variables", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('o', 'e') }}|{% endfor %}", {}),
    ("loop_else", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in missing %}x{% else %}undefined-empty{% endfor %}", {}),
    ("loop_filter", "{% for x in range(10) if x is odd %}{{ x }}/{{ loop.length }},{% endfor %}|{% for p in people if p.age > 30 %}{{ p.name }}{% endfor %}", {}),
    ("loop_controls", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("loop_unpacking", "{% for a, b in [[1, 2], (3, 4), 'xy'] %}{{ a }}{{ b }};{% endfor %}", {}),
    ("loop_nested", "{% for i in [1, 2] %}{% for j in 'ab' %}{{ loop.index }}{{ i }}{{ j }} {% endfor %}{{ loop.index }};{% endfor %}", {}),
    ("loop_dict_and_string", "{% for k in d %}{{ k }}{% endfor %}|{% for c in 'hé' %}[{{ c }}]{% endfor %}", {}),
    ("loop_changed", "{% for p in people %}{% if loop.changed(p.age) %}{{ p.age }} {% endif %}{% endfor %}", {}),
    ("loop_recursive", "{% for item in tree recursive %}{{ item.name }}{{ loop.depth }}{% if item.children %}({{ loop(item.children) }}){% endif %}{% endfor %}", {}),
    # scoping and assignment
    ("scope_loop", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}|{{ x }}", {}),
    ("scope_if", "{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}", {}),
    ("namespace", "{% set ns = namespace(a=1, found=false) %}{% for i in [1, 2, 3] %}{% set ns.a = ns.a + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.a }} {{ ns.found }} {{ ns.missing is defined }}", {}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}", {}),
    ("set_block", "{% set block %}  hello {{ 1 }}  {% endset %}[{{ block }}]{% set b | upper | trim %} hi {% endset %}[{{ b }}]", {}),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", {}),
    ("filter_block", "{% filter upper %}hello {{ 'world' }}{% endfilter %}|{% filter replace('a', 'o') | trim %}  banana  {% endfilter %}", {}),
    # macros
    ("macro_defaults", "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }} {{ greet(name='Z') }} [{{ greet() }}]", {}),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}", {}),
    ("macro_caller", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner {{ 1 + 1 }}{% endcall %}", {}),
    ("macro_caller_args", "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) each([1, 2]) %}[{{ x }}]{% endcall %}", {}),
    ("macro_returns_string", "{% macro t(c) %}{%- if c is string %}{{ c }}{% else %}{% for p in c %}{{ p.text }}{% endfor %}{% endif -%}{% endmacro %}{% set v = t([{'text': 'a'}, {'text': 'b'}]) %}{{ v.upper() }} {{ v|length }} {{ t('x') ~ '!' }}", {}),
    ("macro_recursion", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(6) }}", {}),
    ("macro_scope", "{% set outer = 'o' %}{% macro m() %}{{ outer }}{% set outer = 'inner' %}{{ outer }}{% endmacro %}{{ m() }}{{ outer }}", {}),
    # filters
    ("filter_trim_length", "[{{ text|trim }}]{{ text|length }}{{ people|length }}{{ d|count }}{{ '🌍é'|length }}[{{ 'xxhixx'|trim('x') }}]{{ missing|length }}", {}),
    ("filter_tojson", "{{ nested|tojson }}\n{{ nested|tojson(indent=2) }}\n{{ d|tojson(sort_keys=true) }}\n{{ people[1]|tojson(separators=(',', ':')) }}\n{{ 'é'|tojson(ensure_ascii=true) }}\n{{ [1.0, 1e-7, 1e22, -0.5]|tojson }}\n{{ {}|tojson }}{{ []|tojson(indent=4) }}\n{{ {'a': []}|tojson(indent='\\t') }}", {}),
    ("filter_case", "{{ 'hello'|upper }}{{ 'HeLLo'|lower }}{{ 'hello world'|capitalize }}{{ 'hello-world foo'|title }}{{ none|upper }}{{ 12|string }}{{ [1]|string }}", {}),
    ("filter_replace_join", "{{ 'aaa'|replace('a', 'b') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ [1, 2, 3]|join('-') }}|{{ people|join(', ', attribute='name') }}|{{ ['a', none, 1]|join }}", {}),
    ("filter_default", "{{ missing|default('dflt') }}|{{ ''|default('dflt') }}|{{ ''|default('dflt', true) }}|{{ none|d('x', boolean=true) }}|{{ 0|default(5) }}", {}),
    ("filter_first_last", "{{ people|first }}|{{ [1, 2, 3]|last }}|{{ 'abc'|first }}|{{ d|first }}|[{{ []|first }}]|{{ (people|map(attribute='name'))|first }}", {}),
    ("filter_list_string", "{{ 'abc'|list }}|{{ d|list }}|{{ (1, 2)|list }}|{{ missing|list }}|{{ none|string }}", {}),
    ("filter_int_float", "{{ '42'|int }}{{ '4.7'|int }}{{ 'abc'|int }}{{ 'abc'|int(7) }}{{ '0x1F'|int(base=16) }}{{ 3.9|int }}{{ true|int }}{{ ' 12 '|int }}|{{ '1.5'|float }}{{ 'x'|float }}{{ 3|float }}{{ '1e3'|float }}", {}),
    ("filter_items", "{% for k, v in d|items %}{{ k }}:{{ v }} {% endfor %}{{ d|items|list }}", {}),
    ("filter_select", "{{ people|selectattr('role', 'equalto', 'user')|map(attribute='name')|list }}|{{ people|rejectattr('tags')|list|length }}|{{ people|selectattr('tags', 'defined')|list|length }}|{{ [1, 2, 3, 4]|select('odd')|list }}|{{ [0, 1, '', 'a']|select|list }}|{{ [1, 2, 3]|reject('gt', 1)|list }}|{{ people|selectattr('age', '>=', 30)|list|length }}", {}),
    ("filter_map", "{{ people|map(attribute='name')|list }}|{{ people|map(attribute='tags.0', default='-')|list }}|{{ ['a', 'b']|map('upper')|list }}|{{ [1.5, 2.5]|map('round')|list }}|{{ ['x']|map('replace', 'x', 'y')|list }}", {}),
    ("filter_indent", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'a\\nb'|indent('> ') }}|{{ 'single'|indent(first=true) }}", {}),
    ("filter_numbers", "{{ -3|abs }}{{ -2.5|abs }}|{{ 2.5|round }}{{ 3.5|round }}{{ 3.14159|round(2) }}{{ 3.14159|round(2, 'floor') }}{{ 3.1|round(method='ceil') }}{{ 7|round }}{{ 2.675|round(2) }}|{{ [3, 1, 2]|sum }}{{ people|sum(attribute='age') }}{{ [1, 2]|sum(start=10) }}|{{ [3, 1, 2]|min }}{{ ['b', 'A', 'c']|max }}{{ people|max(attribute='age') }}", {}),
    ("filter_unique_reverse_sort", "{{ ['a', 'A', 'b', 'a']|unique|list }}|{{ ['a', 'A']|unique(case_sensitive=true)|list }}|{{ 'abc'|reverse }}|{{ [1, 2, 3]|reverse|list }}|{{ [3, 1, 2]|sort }}|{{ ['b', 'A', 'c']|sort }}|{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}|{{ [3, 1, 2]|sort(reverse=true) }}|{{ people|sort(attribute='age')|map(attribute='name')|list }}|{{ people|sort(attribute='age,name')|map(attribute='name')|list }}", {}),
    ("filter_dictsort", "{{ d|dictsort }}|{{ {'b': 1, 'A': 2}|dictsort }}|{{ {'b': 1, 'A': 2}|dictsort(true) }}|{{ {'a': 3, 'b': 1}|dictsort(by='value') }}|{{ {'a': 3, 'b': 1}|dictsort(reverse=true) }}", {}),
    ("filter_batch_slice", "{{ [1, 2, 3, 4, 5]|batch(2)|list }}|{{ [1, 2, 3]|batch(2, 'x')|list }}|{{ [1, 2, 3, 4, 5]|slice(2)|list }}|{{ [1, 2, 3, 4]|slice(3, 0)|list }}", {}),
    ("filter_misc", "[{{ 'ab'|center(6) }}]|{{ 'hello world foo bar'|truncate(9) }}|{{ 'hello world foo bar'|truncate(9, true) }}|{{ 'hello world'|truncate(100) }}|{{ 'one two, three'|wordcount }}|{{ '<a href=\"x\">&\\'</a>'|e }}|{{ '%s and %d and %.2f'|format('a', 3, 2.5) }}|{{ '%(k)s!'|format(k='v') }}|{{ 'x'|safe }}{{ 5|safe }}", {}),
    ("filter_attr", "{{ d|attr('a') }}|{{ d|attr('keys') is defined }}|{{ (namespace(x=1))|attr('x') }}", {}),
    # tests
    ("tests_types", "{{ none is none }}{{ 1 is number }}{{ true is number }}{{ 1.5 is float }}{{ 1 is integer }}{{ true is integer }}{{ true is boolean }}{{ 'a' is string }}{{ d is mapping }}{{ people is sequence }}{{ 'a' is iterable }}{{ missing is iterable }}{{ 1 is iterable }}{{ none is string }}{{ d is sequence }}{{ true is true }}{{ 1 is true }}{{ false is false }}{{ range is callable }}", {}),
    ("tests_values", "{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 10 is divisibleby(3) }}{{ 'a' is in 'cat' }}{{ 2 is eq 2 }}{{ 2 is equalto 3 }}{{ 3 is gt 2 }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ none is sameas none }}{{ 1 is not sameas 2 }}{{ 'upper' is filter }}{{ 'odd' is test }}{{ missing is undefined }}{{ 1 is not defined }}", {}),
    # generator semantics of map/select/etc.
    ("generators", "{% if []|select %}truthy{% endif %}|{{ ([1, 2]|select)|list|length }}|{% set g = [1, 2]|map('string') %}{{ g|list }}{{ g|list }}|{{ 'x' in ['x']|map('string') }}", {}),
    # globals
    ("globals", "{{ range(3)|list }}{{ range(1, 7, 2)|list }}{{ range(5, 0, -2)|list }}|{{ strftime_now('%Y-%m-%d %H:%M %d %b') }}|{% set j = joiner('+') %}{% for x in 'ab' %}{{ j() }}{{ x }}{% endfor %}|{{ namespace(a=1).a }}", {}),
    ("message_patterns", "{%- for message in messages -%}{{ message['role'] }}:{{ message.content|trim }}{% if 'tool_calls' in message %} calls={{ message.tool_calls|length }}{% endif %}{% if not loop.last %}\n{% endif %}{%- endfor %}{{ messages|selectattr('role', 'equalto', 'user')|list|length }}", {"messages": [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo", "tool_calls": [{"a": 1}]}]}),
    # more expressions and statements
    ("dict_keys_any_hashable", "{{ {1: 'a', 1.0: 'b', true: 'c', none: 'n'} }}|{{ {(1, 2): 'x'}[(1, 2)] }}|{{ {1: 2, 'k': none}|tojson }}|{{ {2: 'x'}[2.0] }}|{{ 1 in {1: 0} }}", {}),
    ("print_tag_and_dyn_args", "{% print 'p', 1 %}|{% macro m(a, b=0) %}{{ a }}-{{ b }}{% endmacro %}{{ m(*[1, 2]) }} {{ m(**{'a': 3, 'b': 4}) }} {{ m(1, **{'b': 5}) }}", {}),
    ("percent_operator", "{{ '%s' % 5 }}|{{ '%05.1f|%-5s|%x|%X|%o|%r|%c|%%|%+d|% d' % (3.14159, 'a', 255, 255, 8, 'q', 65, 5, 7) }}|{{ '%(a)s-%(b)d' % {'a': 'x', 'b': 2} }}|{{ '%.3e'|format(12345.678) }}", {}),
    ("generation_tag", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}[{{ m.content }}]{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}", {"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}),
    ("macro_default_uses_argument", "{% macro m(a, b=a * 2) %}{{ a }},{{ b }}{% endmacro %}{{ m(3) }}|{{ m(3, 1) }}", {}),
    ("numeric_attribute_and_negative_index", "{{ people.0.name }}|{{ people[-1].name }}|{{ (1, 2)[0] }}|{{ {'a': {'b': 1}}['a']['b'] }}|{{ {'a': 1}.a }}|{{ [[1, 2]][0][1] }}", {}),
    ("negative_constant_power_quirk", "{{ -2 ** 2 }}|{{ -3 ** (number - 40) }}|{{ -3 ** (number - 41) }}|{{ (1 - 4) ** (number - 39) }}|{{ -2.5 ** (number - 40) }}|{{ (-3) ** 2 }}|{% set m = -3 %}{{ m ** 2 }}", {}),
    ("operator_corner_cases", "{{ -2 ** 2 }}|{{ not true and false }}|{{ 10 // 3 * 3 + 10 % 3 }}|{{ [1, 2] + [3] }}|{{ (1,) + (2,) }}|{{ 'a' == 'a' }}|{{ 1 != 1.0 }}|{{ 2 ** 0.5 }}|{{ 7 / 7 }}|{{ 1e100 }}|{{ 123456789012345678 }}|{{ 1.0|string }}|{{ 0.1|round(1) }}", {}),
    ("float_format_specs", "{{ '{:e}'.format(0.00012) }}|{{ '{:g}'.format(1234567.0) }}|{{ '{}'.format(1.0) }}|{{ '{:.3}'.format(3.14159) }}{{ '{:.3}'.format(1.0) }}{{ '{:.2}'.format(1e20) }}|{{ '{:.1%}'.format(0.256) }}|{{ '{:+.2f}'.format(2) }}|{{ '{:x}'.format(255) }}|{{ '{:#b}'.format(5) }}|{{ '{:*^9}'.format('mid') }}|{{ '{0[k]} {1.real}'.format({'k': 'v'}, 5) }}", {}),
    ("misc_syntax", "{{ '{{' }}{{ '}}' }}|{% set e %}{% endset %}[{{ e }}]|[{{ loop.index }}]|{% set café = 1 %}{{ café }}|{{ 'abc' is string and 'abc'|length > 2 }}|{% for x in d|dictsort %}{{ x[0] }}{% endfor %}|{{ 3 is divisibleby(num=3) }}|{{ 1 is in [1] }}|{{ none|tojson }}{{ 'x'|tojson }}", {}),
    ("lstrip_blank_lines", "<start>\n\n    {%- if true %}\n\n  a\n    {%- endif %}\n\n    {% if true -%}\n\n b {% endif %}\n{{ 'c' }}\n", {}),
    ("selectattr_on_messages", "{%- set sys = messages|selectattr('role', 'equalto', 'system')|list -%}{{ sys|length }}{{ (messages|rejectattr('role', 'in', ['system'])|first).content }}{{ messages|map(attribute='role')|unique|join(',') }}", {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "user", "content": "v"}]}),
    ("namespace_repr", "{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns }}|{{ namespace(b=[1]) }}|{{ ns.me.me.a }}", {}),
    ("error_undefined_callable", "{{ no_such_function() }}", {}),
    ("error_missing_caller", "{% macro m() %}{{ caller() }}{% endmacro %}{{ m() }}", {}),
    ("error_missing_str_method", "{{ 'abc'.nosuch() }}", {}),
    ("error_none_plus_int", "{{ none + 1 }}", {}),
    ("error_index_out_of_range_used", "{{ [1][5] + 1 }}", {}),
    ("error_dict_plus_dict", "{{ {'a': 1} + {'b': 2} }}", {}),
    ("error_int_of_undefined", "{{ missing|int }}", {}),
    ("error_join_requires_strings", "{{ ', '.join([1, 2]) }}", {}),
    ("error_empty_expression", "{{ }}", {}),
    ("error_unhashable_key", "{{ {[1]: 2} }}", {}),
    # errors (must also fail in Swift)
    ("error_raise_exception", "before {{ raise_exception('Custom failure: ' ~ number) }}", {}),
    ("error_generator_length", "{{ [1]|select|length }}", {}),
    ("error_str_plus_int", "{{ 'a' + 1 }}", {}),
    ("error_undefined_attribute_chain", "{{ missing.y.z }}", {}),
    ("error_undefined_arithmetic", "{{ missing + 1 }}", {}),
    ("error_sandbox_append", "{% set l = [1] %}{{ l.append(2) }}", {}),
    ("error_namespace_underscore", "{% set ns = namespace() %}{% set ns._x = 1 %}", {}),
    ("error_big_range", "{{ range(200000)|length }}", {}),
    ("error_division_by_zero", "{{ 1 / 0 }}", {}),
    ("error_tojson_undefined", "{{ missing|tojson }}", {}),
    ("error_not_callable", "{{ number() }}", {}),
    ("error_unpack", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("error_unknown_filter_in_if_runtime", "{% if number > 100 %}{{ x|nosuchfilter }}{% endif %}ok", {}),
    ("error_unknown_filter_in_if_triggered", "{% if number > 1 %}{{ x|nosuchfilter }}{% endif %}", {}),
    ("error_unknown_filter", "{{ x|nosuchfilter }}", {}),
    ("error_unknown_test", "{{ x is nosuchtest }}", {}),
    ("error_unclosed_for", "{% for x in y %}no end", {}),
    ("error_unclosed_if", "{% if x %}a{% else %}b", {}),
    ("error_unknown_tag", "{% frobnicate %}", {}),
    ("error_mismatched_end", "{% for x in y %}{% endif %}", {}),
    ("error_unclosed_variable", "{{ x ", {}),
    ("error_unclosed_comment", "{# never closed", {}),
    ("error_bad_expression", "{{ 1 + }}", {}),
    ("error_unbalanced_paren", "{{ (1 }}", {}),
    ("error_unterminated_string", "{{ 'abc }}", {}),
    ("error_break_outside_loop", "{% break %}", {}),
    ("error_macro_too_many_args", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", {}),
    ("error_in_string_requires_string", "{{ 1 in 'abc' }}", {}),
    ("error_compare_types", "{{ 1 < 'a' }}", {}),
    ("error_last_of_generator", "{{ [1]|map('string')|last }}", {}),
]


# Randomly generated expressions and whitespace layouts (fixed seeds), compared against jinja2.
# Markup-producing filters (escape, safe) and complex-number results are left out: the Swift side
# does not model markupsafe.Markup or complex numbers.
FUZZ_ATOMS = ["0", "1", "-3", "7", "2.5", "-1.25", "1e-05", "0.1", "''", "'a'", "'Hello World'", "' x  '", "'a,b,,c'",
              "'é🌍'", "'AbC'", "none", "true", "false", "[]", "[1, 2, 3]", "['b', 'a', 'B']", "{}",
              "{'k': 1, 'a': [1, 2]}", "(1, 'x')", "x", "n", "f", "l", "d", "u", "msgs", "s", "msgs[0]", "d.a", "l[-1]",
              "msgs[1].content"]
FUZZ_FILTERS = ["trim", "length", "upper", "lower", "title", "capitalize", "list", "string", "int", "float", "first",
                "last", "join", "join(', ')", "default('dflt')", "default('dflt', true)", "tojson", "tojson(indent=2)",
                "reverse|list", "sort", "sort(reverse=true)", "unique|list", "abs", "round", "round(1)", "sum", "min",
                "max", "count", "items|list", "dictsort", "replace('a', 'X')", "indent(2)", "center(9)", "truncate(5)",
                "wordcount", "select|list", "reject|list", "map('string')|list",
                "selectattr('role', 'equalto', 'user')|list", "map(attribute='role')|list", "batch(2)|list",
                "slice(2)|list", "format(1)", "attr('a')", "string|length"]
FUZZ_TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "sequence", "iterable",
              "true", "false", "boolean", "odd", "even", "divisibleby 2", "lower", "upper", "callable", "eq 1",
              "in [1, 'a']"]
FUZZ_METHODS = [".strip()", ".upper()", ".split(',')", ".split()", ".startswith('a')", ".endswith('c')",
                ".replace('a', 'b')", ".get('a')", ".get('zz', 0)", ".items()|list", ".keys()|list", ".count('a')",
                ".find('b')", ".title()", ".lstrip('a')", ".splitlines()", ".format(1)", ".join(['p', 'q'])",
                ".isdigit()", ".rstrip()", ".index(1)"]
FUZZ_OPERATORS = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "and", "or"]
FUZZ_CONTEXTS = {}
FUZZ_CONTEXTS["expressions"] = {"x": "text", "n": 5, "f": 2.5, "l": [1, 2, 3], "d": {"a": 1, "b": [1, 2]}, "s": "a,b",
                "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " yo "}]}
FUZZ_CONTEXTS["layout"] = {"n": 1}


def fuzz_expression(rng, depth):
    r = rng.random()
    if depth <= 0 or r < 0.3:
        return rng.choice(FUZZ_ATOMS)
    if r < 0.5:
        return f"({fuzz_expression(rng, depth - 1)} {rng.choice(FUZZ_OPERATORS)} {fuzz_expression(rng, depth - 1)})"
    if r < 0.62:
        return f"({fuzz_expression(rng, depth - 1)})|{rng.choice(FUZZ_FILTERS)}"
    if r < 0.7:
        negation = "not " if rng.random() < 0.3 else ""
        return f"({fuzz_expression(rng, depth - 1)} is {negation}{rng.choice(FUZZ_TESTS)})"
    if r < 0.8:
        return f"({fuzz_expression(rng, depth - 1)}){rng.choice(FUZZ_METHODS)}"
    if r < 0.85:
        a, b, c = (fuzz_expression(rng, depth - 1) for _ in range(3))
        return f"({a} if {b} else {c})"
    if r < 0.9:
        return f"(not {fuzz_expression(rng, depth - 1)})"
    if r < 0.95:
        subscript = rng.choice(["0", "-1", "1:", ":-1", "::-1", "'a'", "5"])
        return f"({fuzz_expression(rng, depth - 1)})[{subscript}]"
    return f"[{fuzz_expression(rng, depth - 1)}, {fuzz_expression(rng, depth - 1)}]"


def fuzz_statement(rng):
    r = rng.random()
    e = lambda depth: fuzz_expression(rng, depth)  # noqa: E731
    if r < 0.12:
        return "{% for i in " + e(2) + " %}[{{ i }}{{ loop.index }}]{% else %}E{% endfor %}"
    if r < 0.2:
        test = rng.choice(["", "is string", "is mapping", "is iterable", "is number"])
        return "{% set v = " + e(2) + " %}{% if v " + test + " %}T{{ v }}{% elif " + e(1) + " %}E{% else %}F{% endif %}"
    if r < 0.26:
        return "{%- for m in msgs if " + e(1) + " -%}\n  {{ m.role }}:{{ " + e(2) + " }}\n{%- endfor %}"
    if r < 0.3:
        return "{% macro f(a, b=" + e(1) + ") %}<{{ a }}|{{ b }}>{% endmacro %}{{ f(" + e(2) + ") }}{{ f(1, b=" + e(1) + ") }}"
    if r < 0.34:
        return ("{% set ns = namespace(c=0, t='') %}{% for i in " + e(2) + " %}{% set ns.c = ns.c + 1 %}"
                "{% set ns.t = ns.t ~ i %}{% endfor %}{{ ns.c }}{{ ns.t }}")
    return "{{ " + e(3) + " }}"


FUZZ_WHITESPACE = ["", " ", "  ", "\n", "\n\n", " \n", "\t", "\n  ", "  \n  ", "\r\n", "x", "a b", "\u00a0", "\n\t "]


def fuzz_layout(rng, depth):
    def tag(body, variable=False):
        left, right = rng.choice(["", "-", "+"]), rng.choice(["", "-", "+"])
        if variable:
            return "{{" + left.replace("+", "") + body + right.replace("+", "") + "}}"
        return "{%" + left + body + right + "%}"
    out = []
    for _ in range(rng.randint(1, 4)):
        out.append(rng.choice(FUZZ_WHITESPACE))
        r = rng.random()
        if r < 0.3:
            out.append(tag(rng.choice([" 'v' ", " n ", "' s '"]), variable=True))
        elif r < 0.45:
            left, right = rng.choice(["", "-", "+"]), rng.choice(["", "-", "+"])
            out.append("{#" + left + " c " + right + "#}")
        elif r < 0.6 and depth > 0:
            out.append(tag(" if n ") + fuzz_layout(rng, depth - 1))
            if rng.random() < 0.5:
                out.append(tag(" else ") + fuzz_layout(rng, depth - 1))
            out.append(tag(" endif "))
        elif r < 0.75 and depth > 0:
            out.append(tag(" for i in [1, 2] ") + fuzz_layout(rng, depth - 1) + tag(" endfor "))
        elif r < 0.8:
            out.append(tag(" set z = 1 "))
        elif r < 0.85:
            out.append("{% raw %}" + rng.choice(FUZZ_WHITESPACE) + "{{ raw }}" + rng.choice(FUZZ_WHITESPACE) + tag(" endraw "))
        out.append(rng.choice(FUZZ_WHITESPACE))
    return "".join(out)


def fuzz_cases(expression_count=800, layout_count=400):
    import random
    rng = random.Random(20250115)
    cases = []
    sources = [fuzz_statement(rng) for _ in range(expression_count)]
    sources += [fuzz_layout(rng, 3) for _ in range(layout_count)]
    context_names = ["expressions"] * expression_count + ["layout"] * layout_count
    for source, context_name in zip(sources, context_names):
        case = {"template": source, "context": context_name}
        case.update(render_feature(source, copy.deepcopy(FUZZ_CONTEXTS[context_name])))
        text = case.get("expected", "") + case.get("error", "")
        if "Markup" in text or "complex" in text:
            continue
        cases.append(case)
    return cases


def render_feature(source, context):
    """Returns a dict with `expected`, or `error`/`error_kind`/`phase`."""
    try:
        compiled = ctu._compile_jinja_template(source)
    except Exception as error:  # noqa: BLE001
        return {"error": str(error), "error_kind": type(error).__name__, "phase": "compile"}
    try:
        return {"expected": compiled.render(**context)}
    except Exception as error:  # noqa: BLE001
        kind = "raise_exception" if type(error) is jinja2.exceptions.TemplateError else type(error).__name__
        return {"error": str(error), "error_kind": kind, "phase": "render"}


def swift_context(messages, tools, add_generation_prompt, bos, eos, kwargs):
    """The context the Swift convenience API builds; must equal what transformers passes to render()."""
    normalized = ctu._alias_reasoning_fields(
        [{k: v for k, v in m.items() if v is not None} for m in messages]
    )
    context = {
        "messages": normalized,
        "tools": tools,
        "documents": None,
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos,
        "eos_token": eos,
    }
    context.update(kwargs)
    return context


def render_with_transformers(source, messages, tools, add_generation_prompt, bos, eos, kwargs):
    """Mirror `apply_chat_template(tokenize=False)`; returns (rendered, captured render kwargs)."""
    captured = {}
    compiled = ctu._compile_jinja_template(source)

    class CapturingTemplate:
        def render(self, **render_kwargs):
            captured.update(render_kwargs)
            return compiled.render(**render_kwargs)

    original = ctu._compile_jinja_template
    ctu._compile_jinja_template = lambda _source: CapturingTemplate()
    try:
        conversations = [ctu._normalize_chat_messages(messages)]
        template_kwargs = {"bos_token": bos, "eos_token": eos, **kwargs}
        rendered, _ = ctu.render_jinja_template(
            conversations=conversations,
            tools=tools,
            chat_template=source,
            add_generation_prompt=add_generation_prompt,
            **template_kwargs,
        )
    finally:
        ctu._compile_jinja_template = original
    return rendered[0], captured


def main():
    templates = {}
    for file_name in sorted(os.listdir(TEMPLATES)):
        if file_name.endswith(".jinja"):
            with open(os.path.join(TEMPLATES, file_name), encoding="utf-8", newline="") as f:
                templates[file_name[: -len(".jinja")]] = f.read()
    if set(templates) != set(TEMPLATE_TOKENS):
        sys.exit(f"templates {sorted(templates)} do not match TEMPLATE_TOKENS {sorted(TEMPLATE_TOKENS)}")

    conversations_out = {}
    for name, (messages, tools, kwargs) in CONVERSATIONS.items():
        conversations_out[name] = {
            "messages": messages,
            "tools": tools,
            "kwargs": kwargs,
            # What the template sees as `messages` (after transformers' normalization).
            "template_messages": swift_context(messages, tools, False, "", "", kwargs)["messages"],
        }

    cases = []
    counts = {"ok": 0, "error": 0}
    for template_name, source in templates.items():
        bos, eos = TEMPLATE_TOKENS[template_name]
        for conversation_name, (messages, tools, kwargs) in CONVERSATIONS.items():
            for add_generation_prompt in (True, False):
                case = {
                    "template": template_name,
                    "conversation": conversation_name,
                    "add_generation_prompt": add_generation_prompt,
                }
                captured = None
                try:
                    rendered, captured = render_with_transformers(
                        source, messages, tools, add_generation_prompt, bos, eos, kwargs
                    )
                    case["expected"] = rendered
                    counts["ok"] += 1
                except Exception as error:  # noqa: BLE001 - every failure becomes an expected error
                    case["error"] = str(error)
                    # raise_exception() raises the base TemplateError; everything else is a subclass or other type
                    case["error_kind"] = (
                        "raise_exception" if type(error) is jinja2.exceptions.TemplateError else type(error).__name__
                    )
                    counts["error"] += 1
                expected_context = swift_context(messages, tools, add_generation_prompt, bos, eos, kwargs)
                if captured and captured != expected_context:
                    sys.exit(f"context mismatch for {template_name}/{conversation_name}:\n{captured}\n{expected_context}")
                cases.append(case)

    features = []
    for name, source, extra_context in FEATURE_CASES:
        context = {**FEATURE_CONTEXT, **extra_context}
        case = {"name": name, "template": source, "context": context}
        case.update(render_feature(source, context))
        features.append(case)
        counts["error" if "error" in case else "ok"] += 1

    fuzz = fuzz_cases()

    fixture = {
        "generator": "Scripts/make-template-goldens.py",
        "transformers_renderer": "transformers.utils.chat_template_utils.render_jinja_template",
        "jinja2_version": jinja2.__version__,
        "frozen_now": FROZEN_NOW.strftime("%Y-%m-%dT%H:%M:%S"),
        "context_recipe": (
            "messages (null-valued keys dropped, reasoning fields aliased), tools (or null), documents=null, "
            "add_generation_prompt, bos_token, eos_token, then the conversation kwargs"
        ),
        "template_tokens": {name: {"bos_token": b, "eos_token": e} for name, (b, e) in TEMPLATE_TOKENS.items()},
        "conversations": conversations_out,
        "cases": cases,
        "features": features,
        "fuzz_contexts": FUZZ_CONTEXTS,
        "fuzz": fuzz,
    }
    with open(OUTPUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases + {len(features)} feature cases + {len(fuzz)} fuzz cases ({counts['ok']} rendered, {counts['error']} raise) -> {os.path.relpath(OUTPUT, ROOT)}")


if __name__ == "__main__":
    main()
