#!/usr/bin/env python3
"""Server benchmark: aggregate decode throughput with N concurrent streams, and TTFT of a resent
long conversation vs a cold one. Starts `dwarfstar serve` itself (same binary, model, threads).

usage: bench/serve-throughput.py [--bin .build/release/dwarfstar] [-m smollm2] [-t 2]
                                 [--streams 1,4,8,16] [-n 128] [-r 3] [--ttft-tokens 4000]

Throughput: each of N clients streams one chat completion of exactly -n tokens (ignore_eos), all
started together; aggregate tokens/s = N·n / wall time until the last stream ends (median of -r runs;
prompt prefill included, as a user would see it). TTFT: a ~4k-token user message (book text) is sent
cold, then the same conversation is resent with the answer and a new question; TTFT = time from request
to the first content chunk.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import httpx

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=".build/release/dwarfstar")
ap.add_argument("-m", "--model", default="smollm2")
ap.add_argument("-t", "--threads", default="2")
ap.add_argument("--streams", default="1,4,8,16")
ap.add_argument("-n", type=int, default=128)
ap.add_argument("-r", type=int, default=3)
ap.add_argument("--ttft-tokens", type=int, default=4000, help="0: skip the time-to-first-token part")
ap.add_argument("--port", type=int, default=18181)
ap.add_argument("--server-args", default="", help="extra arguments for dwarfstar serve, e.g. --no-repack")
args = ap.parse_args()

streams = [int(s) for s in args.streams.split(",")]
base = "http://127.0.0.1:%d" % args.port
server = subprocess.Popen([args.bin, "serve", "-m", args.model, "-t", args.threads, "--port", str(args.port),
                           "--parallel", str(max(streams)), "--ctx", "8192"] + args.server_args.split(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    line = server.stdout.readline()
    if "listening" not in line:
        sys.exit("server did not start: " + line + server.stderr.read())
    client = httpx.Client(timeout=600)
    served = client.get(base + "/v1/models").json()["data"][0]["id"]   # a GGUF path is served by its name

    def stream(messages, max_tokens, ignore_eos=True):
        """Returns (seconds to first content, seconds total, chunks with content)."""
        t0 = time.perf_counter()
        first, n = None, 0
        body = {"model": served, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
                "stream": True, "ignore_eos": ignore_eos}
        with client.stream("POST", base + "/v1/chat/completions", json=body) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    if chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
                        if first is None:
                            first = time.perf_counter() - t0
                        n += 1
        return first, time.perf_counter() - t0, n

    topics = ["the sea", "mountains", "cats", "rain", "coffee", "trains", "music", "winter", "bread", "stars",
              "rivers", "books", "bees", "clocks", "snow", "gardens"]
    stream([{"role": "user", "content": "Hello"}], 8)  # warm-up
    rows = []
    base_rate = None
    for n_streams in streams:
        rates = []
        for rep in range(args.r):
            results = [None] * n_streams

            def run(i):
                msg = [{"role": "user", "content": "Write a long essay about %s (run %d)." % (topics[i % 16], rep)}]
                results[i] = stream(msg, args.n)

            threads = [threading.Thread(target=run, args=(i,)) for i in range(n_streams)]
            t0 = time.perf_counter()
            for th in threads: th.start()
            for th in threads: th.join()
            wall = time.perf_counter() - t0
            assert all(r[2] >= args.n - 1 for r in results), results
            rates.append(n_streams * args.n / wall)
        rate = statistics.median(rates)
        base_rate = base_rate or rate
        rows.append((n_streams, rate, rate / base_rate))
        print("streams %2d: %7.1f tokens/s aggregate (%.2fx of 1 stream)  samples %s" %
              (n_streams, rate, rate / base_rate, ", ".join("%.1f" % r for r in rates)), flush=True)

    # TTFT: cold long conversation, then the same conversation resent with one more turn (0: skipped).
    if args.ttft_tokens <= 0:
        sys.exit(0)
    book = open(os.path.join(os.path.dirname(__file__), "..", "Tests", "EngineTests", "Fixtures", "pride-and-prejudice.txt")).read()
    text = book[: args.ttft_tokens * 4]
    colds, warms = [], []
    for rep in range(args.r):
        doc = ("(%d) " % rep) + text   # a different document each repetition: the cold run is cold
        convo = [{"role": "user", "content": doc + "\n\nSummarise the text above in one sentence."}]
        cold, _, _ = stream(convo, 16, ignore_eos=False)
        answer = client.post(base + "/v1/chat/completions", json={"model": served, "messages": convo, "max_tokens": 16,
                                                                     "temperature": 0}).json()["choices"][0]["message"]["content"]
        convo += [{"role": "assistant", "content": answer}, {"role": "user", "content": "Who is the main character?"}]
        warm, _, _ = stream(convo, 16, ignore_eos=False)
        colds.append(cold); warms.append(warm)
    usage = client.post(base + "/v1/chat/completions", json={"model": served, "messages": convo, "max_tokens": 1}).json()["usage"]
    c, w = statistics.median(colds), statistics.median(warms)
    print("TTFT %d-token conversation: cold %.2f s, resent %.3f s (%.0fx sooner; %d of %d prompt tokens from the cache)" %
          (usage["prompt_tokens"], c, w, c / w, usage["prompt_tokens_details"]["cached_tokens"], usage["prompt_tokens"]))
finally:
    server.terminate()
    server.wait()
