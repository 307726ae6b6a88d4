#!/usr/bin/env python3
"""Drives `dwarfstar serve --pipeline` or `--experts-parallel` (rank 0 of an mpirun job) with the official OpenAI client.

usage: pipeline_client.py BASE_URL EXPECTED_TEXT

A greedy chat answer equals EXPECTED_TEXT (one process's answer to the same prompt); so do a streamed
answer and 4 concurrent answers (several sequences in one pipelined step), and a repeat of the first
(its prompt now a cached prefix on every rank). Prints one line per check; exits non-zero on a failure.
"""
import concurrent.futures
import sys
import time

import httpx
import openai

BASE, EXPECTED = sys.argv[1].rstrip("/"), sys.argv[2]
client = openai.OpenAI(base_url=BASE + "/v1", api_key="unused", max_retries=0, timeout=300)
MESSAGES = [{"role": "user", "content": "Name three colours."}]


def check(cond, what):
    if not cond:
        print("FAIL: " + what, flush=True)
        sys.exit(1)
    print("ok: " + what, flush=True)


def wait_for_server(seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            httpx.get(BASE + "/v1/models", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    check(False, "the server answers within %d s" % seconds)


def answer():
    r = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16, temperature=0)
    return r.choices[0].message.content


wait_for_server()
first = answer()
check(first == EXPECTED, f"greedy answer equals one process's: {first!r} vs {EXPECTED!r}")
streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
    model="m", messages=MESSAGES, max_tokens=16, temperature=0, stream=True) if c.choices)
check(streamed == EXPECTED, f"streamed answer: {streamed!r}")
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    answers = list(pool.map(lambda _: answer(), range(4)))
check(all(a == EXPECTED for a in answers), f"4 concurrent answers: {answers!r}")
check(answer() == EXPECTED, "a repeat over the cached prefix")
print("all pipeline client checks passed", flush=True)
