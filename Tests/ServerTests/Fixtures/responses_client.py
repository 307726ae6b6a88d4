#!/usr/bin/env python3
"""The Responses API of `dwarfstar serve` through the official `openai` client's `responses` interface.

    responses_client.py BASE_URL MODEL

Exits non-zero with the failed checks listed. Greedy sampling (temperature 0) throughout.
"""

import json
import sys

import openai
import pydantic

BASE, MODEL = sys.argv[1].rstrip("/"), sys.argv[2]
client = openai.OpenAI(base_url=BASE + "/v1", api_key="unused", max_retries=0, timeout=120)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


# --- A whole response, then one that continues it ---------------------------------------------------
first = client.responses.create(model=MODEL, input="Name three colours.", max_output_tokens=24, temperature=0)
check(first.id.startswith("resp_") and first.object == "response", "response id and object")
check(first.status in ("completed", "incomplete") and first.output_text.strip() != "", "output_text: %r" % first.output_text[:60])
check(first.output[0].type == "message" and first.output[0].content[0].type == "output_text", "one message item with output_text")
check(first.usage.input_tokens > 0 and first.usage.output_tokens > 0
      and first.usage.total_tokens == first.usage.input_tokens + first.usage.output_tokens, "usage adds up")

second = client.responses.create(model=MODEL, previous_response_id=first.id, input="Now name one more.",
                                 max_output_tokens=16, temperature=0)
check(second.previous_response_id == first.id, "previous_response_id echoed")
check(second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens - 4,
      "the continuation's prompt holds the first exchange (%d > %d + %d)"
      % (second.usage.input_tokens, first.usage.input_tokens, first.usage.output_tokens))
check(second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens - 2,
      "the stored conversation's tokens come from the prefix cache (%d cached of %d)"
      % (second.usage.input_tokens_details.cached_tokens, second.usage.input_tokens))

# The same conversation sent whole gives the same answer.
whole = client.responses.create(model=MODEL, input=[
    {"role": "user", "content": "Name three colours."},
    {"role": "assistant", "content": [{"type": "output_text", "text": first.output_text}]},
    {"role": "user", "content": [{"type": "input_text", "text": "Now name one more."}]},
], max_output_tokens=16, temperature=0)
check(whole.output_text == second.output_text, "previous_response_id equals sending the conversation (%r / %r)"
      % (whole.output_text[:40], second.output_text[:40]))

# instructions: the system message of this request only.
told = client.responses.create(model=MODEL, instructions="Answer with one word.", input="What is the capital of France?",
                               max_output_tokens=8, temperature=0)
check(told.instructions == "Answer with one word." and told.output_text.strip() != "", "instructions echoed and answered")

# Retrieve, delete, store=False.
got = client.responses.retrieve(first.id)
check(got.id == first.id and got.output_text == first.output_text, "retrieve a stored response")
deleted = client.responses.delete(second.id)
try:
    client.responses.retrieve(second.id)
    check(False, "a deleted response is gone")
except openai.NotFoundError:
    check(True, "a deleted response is gone")
try:
    client.responses.create(model=MODEL, previous_response_id=second.id, input="hi", max_output_tokens=4)
    check(False, "continuing a deleted response is refused")
except openai.NotFoundError as e:
    check("previous_response_id" in str(e) or "not stored" in str(e), "continuing a deleted response → 404")
unstored = client.responses.create(model=MODEL, input="hi", max_output_tokens=4, store=False, temperature=0)
try:
    client.responses.retrieve(unstored.id)
    check(False, "store=false keeps nothing")
except openai.NotFoundError:
    check(True, "store=false keeps nothing")

# --- Streaming ---------------------------------------------------------------------------------------
events = list(client.responses.create(model=MODEL, input="Count to five.", max_output_tokens=20, temperature=0, stream=True))
types = [e.type for e in events]
check(types[:2] == ["response.created", "response.in_progress"], "stream starts with created, in_progress: %s" % types[:3])
check(types[-1] in ("response.completed", "response.incomplete"), "stream ends with the response: %s" % types[-1])
check([e.sequence_number for e in events] == list(range(len(events))), "sequence numbers count up from 0")
for expected in ("response.output_item.added", "response.content_part.added", "response.output_text.delta",
                 "response.output_text.done", "response.content_part.done", "response.output_item.done"):
    check(expected in types, "stream has " + expected)
deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
final = events[-1].response
check(deltas == final.output_text and deltas.strip() != "", "deltas add up to the final text")
greedy = client.responses.create(model=MODEL, input="Count to five.", max_output_tokens=20, temperature=0)
check(greedy.output_text == deltas, "streamed and whole answers agree")

# The SDK's stream helper.
with client.responses.stream(model=MODEL, input="Say hi in three words.", max_output_tokens=200, temperature=0) as stream:
    for _ in stream:
        pass
    helper = stream.get_final_response()
check(helper.output_text.strip() != "", "responses.stream helper gets the final response")

# --- Tools -------------------------------------------------------------------------------------------
weather = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}
called = client.responses.create(model=MODEL, input="What is the weather in Paris?", tools=[weather],
                                 tool_choice={"type": "function", "name": "get_weather"}, temperature=0, max_output_tokens=64)
calls = [o for o in called.output if o.type == "function_call"]
check(len(calls) == 1 and calls[0].name == "get_weather", "a forced call is a function_call item")
if calls:
    arguments = json.loads(calls[0].arguments)
    check(isinstance(arguments.get("city"), str), "its arguments follow the schema: %s" % calls[0].arguments)
    answered = client.responses.create(model=MODEL, previous_response_id=called.id, tools=[weather], temperature=0,
                                       max_output_tokens=24, input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                                                                     "output": json.dumps({"temperature_c": 21})}])
    check(answered.output[0].type == "message" and answered.output_text.strip() != "", "the call's output is answered in text")

streamed_call = list(client.responses.create(model=MODEL, input="Weather in Rome?", tools=[weather], tool_choice="required",
                                             temperature=0, max_output_tokens=64, stream=True))
kinds = [e.type for e in streamed_call]
check("response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds,
      "a streamed call sends argument deltas and done")
done = [e for e in streamed_call if e.type == "response.function_call_arguments.done"]
pieces = "".join(e.delta for e in streamed_call if e.type == "response.function_call_arguments.delta")
check(bool(done) and done[0].arguments == pieces and json.loads(pieces).get("city"), "the deltas are the arguments: %s" % pieces)

# --- Structured output -------------------------------------------------------------------------------
class Colour(pydantic.BaseModel):
    name: str
    primary: bool

parsed = client.responses.parse(model=MODEL, input="Give a colour as JSON.", text_format=Colour, temperature=0, max_output_tokens=200)
check(isinstance(parsed.output_parsed, Colour), "text.format json_schema parses into the model: %r" % parsed.output_text[:60])

# --- Errors ------------------------------------------------------------------------------------------
try:
    client.responses.create(model=MODEL, input=[{"role": "wizard", "content": "hi"}])
    check(False, "a bad role is refused")
except openai.BadRequestError as e:
    check("role" in str(e), "a bad role → 400 naming it")
try:
    client.responses.create(model=MODEL, input="hi", tools=[{"type": "web_search"}])
    check(False, "a hosted tool is refused")
except openai.BadRequestError as e:
    check("web_search" in str(e), "a hosted tool → 400 naming it")

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all Responses API checks passed")
