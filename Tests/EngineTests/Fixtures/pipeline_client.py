#!/usr/bin/env python3
"""Drives `dwarfstar serve --pipeline` or `--experts-parallel` (rank 0 of an mpirun job) with the official
OpenAI client.

usage: pipeline_client.py BASE_URL EXPECTED_TEXT
       pipeline_client.py BASE_URL --unavailable

With EXPECTED_TEXT: a greedy chat answer equals it (one process's answer to the same prompt); so do a
streamed answer and 4 concurrent answers (several sequences in one distributed step), and a repeat of the
first (its prompt now a cached prefix on every rank).

With --unavailable (a server whose other ranks go silent after a few steps, --stall-after-steps): the
request running then ends with an error once the link's timeout passes (it does not hang); from then on
/health answers 503 and the client's requests get 503 at once.

Prints one line per check; exits non-zero on a failure.
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


def answer(max_tokens=16):
    r = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=max_tokens, temperature=0)
    return r.choices[0].message.content


def answers_match():
    first = answer()
    check(first == EXPECTED, f"greedy answer equals one process's: {first!r} vs {EXPECTED!r}")
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="m", messages=MESSAGES, max_tokens=16, temperature=0, stream=True) if c.choices)
    check(streamed == EXPECTED, f"streamed answer: {streamed!r}")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: answer(), range(4)))
    check(all(a == EXPECTED for a in answers), f"4 concurrent answers: {answers!r}")
    check(answer() == EXPECTED, "a repeat over the cached prefix")


def unavailable_after_silence():
    start = time.time()
    r = httpx.post(BASE + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "max_tokens": 40, "temperature": 0},
                   timeout=60)
    body = r.json()
    check("error" in body and "unavailable" in body["error"]["message"], f"the running request fails: {r.status_code} {body}")
    check(time.time() - start < 30, "within the link's timeout, not hanging")
    health = httpx.get(BASE + "/health", timeout=10)
    check(health.status_code == 503 and health.json()["status"] == "unavailable", f"/health: {health.status_code} {health.text}")
    start = time.time()
    try:
        answer(8)
        check(False, "a later request is refused")
    except openai.APIStatusError as e:
        check(e.status_code == 503 and "unavailable" in str(e), f"a later request gets 503: {e}")
    check(time.time() - start < 5, "at once")


wait_for_server()
if EXPECTED == "--unavailable":
    unavailable_after_silence()
else:
    answers_match()
print("all pipeline client checks passed", flush=True)
