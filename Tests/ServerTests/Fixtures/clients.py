#!/usr/bin/env python3
"""Drives a running `dwarfstar serve` with the official OpenAI and Anthropic Python clients.

usage: clients.py BASE_URL MODEL

Checks, with greedy sampling: whole and streamed answers agree (chat, completions, messages), usage and
finish reasons, logprobs, stop sequences, API-shaped errors, 16 concurrent streams each equal to the same
request run alone, and a client that disconnects mid-stream frees its sequence (via /metrics).
Prints one line per check; exits non-zero on the first failure.
"""
import concurrent.futures
import json
import sys
import time

import anthropic
import httpx
import openai

BASE, MODEL = sys.argv[1].rstrip("/"), sys.argv[2]
oa = openai.OpenAI(base_url=BASE + "/v1", api_key="unused", max_retries=0, timeout=300)
an = anthropic.Anthropic(base_url=BASE, api_key="unused", max_retries=0, timeout=300)
# Recent anthropic clients dropped the temperature argument; the API field still exists.
GREEDY = {"temperature": 0}


def check(cond, what):
    if not cond:
        print("FAIL: " + what, flush=True)
        sys.exit(1)
    print("ok: " + what, flush=True)


def chat(content, max_tokens=24, stream=False, **kw):
    messages = [{"role": "user", "content": content}]
    if not stream:
        r = oa.chat.completions.create(model=MODEL, messages=messages, max_tokens=max_tokens, temperature=0, **kw)
        return r.choices[0].message.content, r
    chunks = list(oa.chat.completions.create(model=MODEL, messages=messages, max_tokens=max_tokens, temperature=0,
                                             stream=True, stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


# --- OpenAI chat -------------------------------------------------------------------------------------
models = oa.models.list()
check([m.id for m in models.data] == [MODEL], "GET /v1/models lists the served model")

text, r = chat("What is the capital of France?")
check(r.object == "chat.completion" and r.choices[0].message.role == "assistant" and len(text) > 0, "chat completion answers")
check(r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
      and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, "chat usage adds up")
check(r.choices[0].finish_reason in ("stop", "length"), "chat finish_reason")

streamed, chunks = chat("What is the capital of France?", stream=True)
check(streamed == text, "streamed chat text equals the whole answer: %r" % streamed)
check(all(c.object == "chat.completion.chunk" for c in chunks), "chunks are chat.completion.chunk")
check(chunks[0].choices[0].delta.role == "assistant", "first chunk carries the role")
finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
check(len(finals) == 1 and finals[0].choices[0].finish_reason == r.choices[0].finish_reason, "one final chunk with the finish_reason")
check(chunks[-1].usage is not None and chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == r.usage.completion_tokens,
      "include_usage adds a usage chunk")

short, r = chat("Count from 1 to 20, separated by spaces.", max_tokens=5)
check(r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5, "max_tokens stops with finish_reason length")

_, r = chat("Say hello.", max_tokens=8, logprobs=True, top_logprobs=3)
lp = r.choices[0].logprobs.content
check(len(lp) == r.usage.completion_tokens and all(t.logprob <= 0 and len(t.top_logprobs) == 3 for t in lp),
      "logprobs with top_logprobs per token")
check(all(t.top_logprobs[0].logprob >= t.logprob - 1e-5 for t in lp), "greedy tokens are the most likely ones")

full, _ = chat("Count from 1 to 20, separated by spaces.", max_tokens=40)
cut = full.split()[3] if len(full.split()) > 4 else None
if cut:
    stopped, r = chat("Count from 1 to 20, separated by spaces.", max_tokens=40, stop=[" " + cut])
    check(r.choices[0].finish_reason == "stop" and stopped == full[:full.index(" " + cut)], "stop sequence cuts the text before it")

# --- Structured output: json_object and json_schema (constrained decoding) ------------------------
import jsonschema
import pydantic

r = oa.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "List three fruits as JSON."}],
                               max_tokens=120, temperature=0.8, seed=7, response_format={"type": "json_object"})
check(isinstance(json.loads(r.choices[0].message.content), dict), "json_object output parses as an object: %s" % r.choices[0].message.content)
person = {"type": "object", "additionalProperties": False, "required": ["name", "age", "colour"],
          "properties": {"name": {"type": "string", "maxLength": 30}, "age": {"type": "integer"},
                         "colour": {"enum": ["red", "green", "blue"]}}}
for temperature in (0, 1.0):
    for seed in range(3 if temperature else 1):
        r = oa.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Describe a person as JSON."}],
                                       max_tokens=120, temperature=temperature, seed=seed,
                                       response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": person, "strict": True}})
        value = json.loads(r.choices[0].message.content)
        jsonschema.validate(value, person)
        check(r.choices[0].finish_reason == "stop", "json_schema output validates (temperature %s, seed %d): %s" % (temperature, seed, value))
streamed = "".join(c.choices[0].delta.content or "" for c in oa.chat.completions.create(
    model=MODEL, messages=[{"role": "user", "content": "Describe a person as JSON."}], max_tokens=120, temperature=0, stream=True,
    response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": person}}) if c.choices)
jsonschema.validate(json.loads(streamed), person)
check(True, "streamed json_schema output validates")


class City(pydantic.BaseModel):
    name: str
    country: str
    population: int


parsed = oa.chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": "Give me a city."}], max_tokens=120,
                                   temperature=0, response_format=City)
check(isinstance(parsed.choices[0].message.parsed, City), "pydantic response_format parses: %r" % parsed.choices[0].message.parsed)
try:
    oa.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], response_format={
        "type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "string", "pattern": "^a+$"}}})
    check(False, "unenforceable schema refused")
except openai.BadRequestError as e:
    check("pattern" in str(e), "a schema keyword that cannot be enforced → 400 naming it")

# --- Tools: calls forced by tool_choice are constrained to the tool's schema ------------------------
weather = {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
           "properties": {"city": {"type": "string", "maxLength": 40}, "unit": {"enum": ["celsius", "fahrenheit"]}}}
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": weather}},
         {"type": "function", "function": {"name": "get_time", "description": "Current time in a time zone",
                                           "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 30}},
                                                          "required": ["zone"]}}}]
ask = [{"role": "user", "content": "What is the weather in Paris?"}]
r = oa.chat.completions.create(model=MODEL, messages=ask, tools=tools, tool_choice="required", max_tokens=80, temperature=0)
call = r.choices[0].message.tool_calls[0]
check(r.choices[0].finish_reason == "tool_calls" and call.type == "function" and call.function.name in ("get_weather", "get_time"),
      "tool_choice required gives a tool call: %s(%s)" % (call.function.name, call.function.arguments))
r = oa.chat.completions.create(model=MODEL, messages=ask, tools=tools, max_tokens=80, temperature=0,
                               tool_choice={"type": "function", "function": {"name": "get_weather"}})
call = r.choices[0].message.tool_calls[0]
args = json.loads(call.function.arguments)
jsonschema.validate(args, weather)
check(call.function.name == "get_weather", "a named tool_choice calls it with valid arguments: %s" % args)
chunks = list(oa.chat.completions.create(model=MODEL, messages=ask, tools=tools, max_tokens=80, temperature=0, stream=True,
                                         tool_choice={"type": "function", "function": {"name": "get_weather"}}))
deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
check(len(deltas) > 2 and deltas[0].function.name == "get_weather" and deltas[0].id == deltas[0].id,
      "streamed call: a header then %d argument deltas" % (len(deltas) - 1))
check("".join(d.function.arguments or "" for d in deltas) == call.function.arguments, "streamed arguments equal the whole call's")
check(chunks[-1].choices[0].finish_reason == "tool_calls", "streamed finish_reason tool_calls")
# The call and its result go back into the conversation (rendered by the template or the system message).
follow = ask + [{"role": "assistant", "content": None, "tool_calls": [{"id": call.id, "type": "function",
                                                                      "function": {"name": "get_weather", "arguments": call.function.arguments}}]},
                {"role": "tool", "tool_call_id": call.id, "content": "{\"temperature\": 21, \"sky\": \"clear\"}"}]
r = oa.chat.completions.create(model=MODEL, messages=follow, tools=tools, tool_choice="none", max_tokens=30, temperature=0)
check(r.choices[0].finish_reason in ("stop", "length") and r.choices[0].message.content, "a tool result turn is answered in text")

m = an.messages.create(model=MODEL, max_tokens=80, extra_body=GREEDY, messages=ask, tool_choice={"type": "tool", "name": "get_weather"},
                       tools=[{"name": "get_weather", "description": "Current weather in a city", "input_schema": weather}])
block = m.content[0]
jsonschema.validate(block.input, weather)
check(m.stop_reason == "tool_use" and block.type == "tool_use" and block.name == "get_weather", "anthropic tool_use block: %s" % block.input)
with an.messages.stream(model=MODEL, max_tokens=80, extra_body=GREEDY, messages=ask, tool_choice={"type": "any"},
                        tools=[{"name": "get_weather", "description": "Current weather in a city", "input_schema": weather}]) as s:
    final = s.get_final_message()
check(final.stop_reason == "tool_use" and final.content[0].type == "tool_use" and final.content[0].input == block.input,
      "anthropic streamed input_json_delta builds the same input")
m2 = an.messages.create(model=MODEL, max_tokens=30, extra_body=GREEDY, tools=[{"name": "get_weather", "input_schema": weather}],
                        messages=ask + [{"role": "assistant", "content": [{"type": "tool_use", "id": block.id, "name": "get_weather", "input": block.input}]},
                                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "21 C, clear"}]}],
                        tool_choice={"type": "none"})
check(m2.content[0].type == "text" and m2.stop_reason in ("end_turn", "max_tokens"), "anthropic tool_result turn answered in text")

# --- OpenAI completions ------------------------------------------------------------------------------
c = oa.completions.create(model=MODEL, prompt="The quick brown fox", max_tokens=12, temperature=0)
check(c.object == "text_completion" and len(c.choices[0].text) > 0, "text completion answers")
sc = "".join(x.choices[0].text for x in oa.completions.create(model=MODEL, prompt="The quick brown fox", max_tokens=12,
                                                                 temperature=0, stream=True) if x.choices)
check(sc == c.choices[0].text, "streamed completion equals the whole one")

# --- Anthropic messages ------------------------------------------------------------------------------
m = an.messages.create(model=MODEL, max_tokens=24, extra_body=GREEDY, system="You are terse.",
                       messages=[{"role": "user", "content": "Name a primary colour."}])
check(m.type == "message" and m.role == "assistant" and m.content[0].type == "text" and len(m.content[0].text) > 0,
      "anthropic message answers")
check(m.stop_reason in ("end_turn", "max_tokens") and m.usage.output_tokens > 0, "anthropic stop_reason and usage")
with an.messages.stream(model=MODEL, max_tokens=24, extra_body=GREEDY, system="You are terse.",
                        messages=[{"role": "user", "content": "Name a primary colour."}]) as s:
    streamed = "".join(s.text_stream)
    final = s.get_final_message()
check(streamed == m.content[0].text, "anthropic streamed text equals the whole answer")
check(final.stop_reason == m.stop_reason and final.usage.output_tokens == m.usage.output_tokens, "anthropic final message from events")
events = [e.type for e in an.messages.create(model=MODEL, max_tokens=4, extra_body=GREEDY, stream=True,
                                                 messages=[{"role": "user", "content": "Hi"}])]
check(events[0] == "message_start" and events[1] == "content_block_start" and events[-3:] == ["content_block_stop", "message_delta", "message_stop"],
      "anthropic event order: %s" % events)
word = m.content[0].text.split()[0] if m.content[0].text.split() else None
if word and len(m.content[0].text.split()) > 1:
    ms = an.messages.create(model=MODEL, max_tokens=24, extra_body=GREEDY, system="You are terse.", stop_sequences=[word],
                            messages=[{"role": "user", "content": "Name a primary colour."}])
    check(ms.stop_reason == "stop_sequence" and ms.stop_sequence == word, "anthropic stop_sequence reported")

# --- Errors in each API's shape ----------------------------------------------------------------------
# A placeholder model name (clients configured with "default") is answered by the served model.
placeholder = oa.chat.completions.create(model="default", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
check(placeholder.choices[0].message.content is not None, "any model name is answered by the served model")
try:
    oa.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=10_000_000)
    check(False, "oversized max_tokens refused")
except openai.BadRequestError as e:
    check("more than the context" in e.body["message"] if isinstance(e.body, dict) else "context" in str(e),
          "max_tokens beyond the context → 400 saying by how much")
try:
    oa.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature="hot")
    check(False, "wrong type refused")
except openai.BadRequestError as e:
    check("temperature" in str(e), "wrong parameter type → 400 naming it")
try:
    an.messages.create(model=MODEL, max_tokens=8, messages=[])
    check(False, "empty messages refused")
except anthropic.BadRequestError as e:
    check(e.body["type"] == "error" and e.body["error"]["type"] == "invalid_request_error", "anthropic error shape")


# --- Concurrency: 16 streams, each equal to the same request alone -----------------------------------
prompts = ["Write one sentence about %s." % t for t in
           ["the sea", "mountains", "cats", "rain", "coffee", "trains", "music", "winter",
            "bread", "stars", "rivers", "books", "bees", "clocks", "snow", "gardens"]]


def stream_text(p):
    out = oa.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": p}], max_tokens=32,
                                     temperature=0, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in out if c.choices)


alone = [stream_text(p) for p in prompts]
for round_ in range(2):
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        together = list(ex.map(stream_text, prompts))
    bad = [i for i in range(16) if together[i] != alone[i]]
    check(not bad, "round %d: 16 concurrent streams equal their requests run alone (differ: %s)" % (round_, bad))


# --- Disconnect mid-stream frees the sequence --------------------------------------------------------
def metric(name):
    text = httpx.get(BASE + "/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a very long story."}], "max_tokens": 2000,
        "temperature": 0, "stream": True}
with httpx.Client(timeout=60) as h:
    with h.stream("POST", BASE + "/v1/chat/completions", json=body) as resp:
        got = 0
        for line in resp.iter_lines():
            if line.startswith("data: ") and "content" in line:
                got += 1
                if got == 5:
                    break
check(got == 5, "stream started")
deadline = time.time() + 20
while time.time() < deadline and (metric("dwarfstar_requests_active") != 0 or metric("dwarfstar_kv_pages_used") != 0):
    time.sleep(0.2)
check(metric("dwarfstar_requests_active") == 0 and metric("dwarfstar_kv_pages_used") == 0,
      "a disconnected stream is cancelled and its pages are freed")
check(metric("dwarfstar_requests_cancelled_total") >= 1, "the cancellation is counted")
# A model without state beside the KV cache (SmolLM2) keeps no side-state snapshots and replays nothing.
check(metric("dwarfstar_state_checkpoints_count") == 0 and metric("dwarfstar_state_replayed_positions_total") == 0,
      "side-state metrics are exported")
print("all client checks passed", flush=True)
