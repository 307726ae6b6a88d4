#!/usr/bin/env python3
"""Speculative decoding benchmark: greedy generation with and without `--spec ngram`, alternated per
prompt, on three kinds of work built from this repository's own files (no downloads):

  code    a source file of 100-200 lines, asked back with a small change (code editing)
  quote   a documentation paragraph, quoted and then summarised (copied spans)
  prose   free writing on a topic (nothing to copy: speculation must not slow it down)

For each kind: tokens/s = all generated tokens / all generation seconds (from the `run` statistics),
plain vs speculative, and their ratio; the outputs must be identical (greedy), which is checked.

usage: bench/spec-bench.py [--bin .build/release/dwarfstar] [-m smollm2] [-t 2] [-n 256] [--per-kind 12]
"""
import argparse
import glob
import os
import re
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=".build/release/dwarfstar")
ap.add_argument("-m", "--model", default="smollm2")
ap.add_argument("-t", "--threads", default="2")
ap.add_argument("-n", type=int, default=256)
ap.add_argument("--per-kind", type=int, default=12)
ap.add_argument("--draft-max", type=int, default=16)
args = ap.parse_args()
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_prompts(count):
    files = sorted(glob.glob(os.path.join(root, "Sources", "*", "*.swift")))
    out = []
    for path in files:
        lines = open(path).read().splitlines()
        if len(lines) < 100:
            continue
        chunk = "\n".join(lines[:min(len(lines), 160)])
        names = re.findall(r"\blet (\w{4,})\b", chunk)
        if not names:
            continue
        old = names[0]
        out.append("Here is a Swift source file. Write it out again in full, exactly as it is, except that "
                   "the name `%s` becomes `%sValue` everywhere.\n\n```swift\n%s\n```" % (old, old, chunk))
        if len(out) == count:
            break
    return out


def quote_prompts(count):
    paragraphs = []
    for path in sorted(glob.glob(os.path.join(root, "docs", "*.md"))):
        for p in open(path).read().split("\n\n"):
            p = p.strip()
            if 400 <= len(p) <= 1200 and not p.startswith(("|", "```", "#", "-", "!")):
                paragraphs.append(p)
    step = max(1, len(paragraphs) // count)
    return ["Quote the following paragraph word for word, then summarise it in one sentence.\n\n" + p
            for p in paragraphs[::step][:count]]


def prose_prompts(count):
    topics = ["a lighthouse keeper", "the first snow of winter", "a lost umbrella", "a train at midnight",
              "a garden in spring", "an old clockmaker", "a city at dawn", "a letter never sent",
              "the sound of rain", "a fox in the forest", "a market by the sea", "a violin in an attic",
              "the last bus home", "a map with no names", "a bakery at four a.m.", "a kite on a windy hill"]
    return ["Write a short story about %s." % t for t in topics[:count]]


def run(prompt, spec):
    cmd = [args.bin, "run", "-m", args.model, "--temp", "0", "-n", str(args.n), "-t", args.threads, "-p", prompt]
    if spec:
        cmd += ["--spec", "ngram", "--draft-max", str(args.draft_max)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("dwarfstar failed: " + r.stderr[-2000:])
    stats = r.stderr.strip().splitlines()[-1]
    m = re.search(r"generation (\d+) tokens ([\d.]+) tok/s", stats)
    tokens, rate = int(m.group(1)), float(m.group(2))
    accepted = re.search(r"(\d+) drafted, (\d+) accepted", stats)
    return r.stdout, tokens, (tokens / rate if rate > 0 else 0.0), (accepted.groups() if accepted else ("0", "0"))


print("| kind | prompts | plain tok/s | speculative tok/s | ratio | drafted | accepted | outputs identical |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for kind, prompts in [("code", code_prompts(args.per_kind)), ("quote", quote_prompts(args.per_kind)),
                      ("prose", prose_prompts(args.per_kind))]:
    totals = {False: [0, 0.0], True: [0, 0.0]}
    drafted = accepted = 0
    identical = True
    for prompt in prompts:
        outputs = {}
        for spec in (False, True):
            text, tokens, seconds, (d, a) = run(prompt, spec)
            outputs[spec] = text
            totals[spec][0] += tokens
            totals[spec][1] += seconds
            if spec:
                drafted += int(d)
                accepted += int(a)
        identical &= outputs[False] == outputs[True]
    plain = totals[False][0] / totals[False][1]
    speculative = totals[True][0] / totals[True][1]
    print("| %s | %d | %.1f | %.1f | **%.2f×** | %d | %d | %s |" % (kind, len(prompts), plain, speculative,
                                                                   speculative / plain, drafted, accepted,
                                                                   "yes" if identical else "NO"))
    sys.stdout.flush()
