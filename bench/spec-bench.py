#!/usr/bin/env python3
"""Speculative decoding benchmark: greedy generation with and without speculation, alternated per
prompt, on four kinds of work built from this repository's own files (no downloads):

  code    a source file of 100-160 lines, asked back with a small change (code editing)
  quote   a documentation paragraph, quoted and then summarised (copied spans)
  prose   free writing on a topic (nothing to copy: speculation must not slow it down)
  chat    short questions answered freely (likewise)

The workload is written to bench/workloads/speculation.jsonl (committed; --write-workload rewrites it)
and run by `dwarfstar bench --spec ngram --spec-prompts FILE`, which alternates plain and speculative
runs in fresh sessions, checks that the outputs are identical and reports tokens/s per kind.

With --llama-lookup BIN, llama.cpp's prompt-lookup decoding (llama-lookup, the same n-gram idea) runs
the same prompts on the same file, rendered by DwarfStar's chat template: --spec-draft-n-max 0 (plain)
and the same draft limit, alternated, tokens/s per kind from its "decoded N tokens in S seconds".

usage: bench/spec-bench.py [--bin .build/release/dwarfstar] [-m smollm2] [-t 2] [-n 256] [-r 1]
                           [--per-kind 24] [--write-workload] [--llama-lookup BIN] [--limit N] [--kinds K,...]
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=".build/release/dwarfstar")
ap.add_argument("-m", "--model", default="smollm2")
ap.add_argument("-t", "--threads", default="2")
ap.add_argument("-n", type=int, default=256)
ap.add_argument("-r", type=int, default=1)
ap.add_argument("--per-kind", type=int, default=24)
ap.add_argument("--draft-max", type=int, default=16)
ap.add_argument("--workload", default=None, help="JSON Lines workload (default: bench/workloads/speculation.jsonl)")
ap.add_argument("--write-workload", action="store_true", help="rebuild the workload file from the repository and exit")
ap.add_argument("--llama-lookup", default=None, help="llama.cpp's llama-lookup binary: also run it on the same prompts")
ap.add_argument("--kinds", default=None, help="comma-separated kinds to run (default: all)")
ap.add_argument("--limit", type=int, default=0, help="the first N prompts of each kind (0: all)")
args = ap.parse_args()
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
workload_path = args.workload or os.path.join(root, "bench", "workloads", "speculation.jsonl")


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
              "the last bus home", "a map with no names", "a bakery at four a.m.", "a kite on a windy hill",
              "a ship in a bottle", "a mountain village", "a forgotten library", "a night at the observatory",
              "a river in flood", "an orchard in autumn", "a desert crossing", "a carnival after closing"]
    return ["Write a short story about %s." % t for t in topics[:count]]


def chat_prompts(count):
    questions = ["What makes a good cup of tea?", "Why is the sky blue?", "How do I keep a sourdough starter alive?",
                 "What should I pack for a weekend hike?", "Explain what a compiler does.", "How do bees make honey?",
                 "What is the difference between weather and climate?", "Give me tips for learning to juggle.",
                 "Why do cats purr?", "How does a bicycle stay upright?", "What is a good way to start journaling?",
                 "How do tides work?", "What are some fun things to do on a rainy day?", "How do I care for a cactus?",
                 "What is the history of the printing press?", "How can I sleep better?", "Why do leaves change colour?",
                 "What is a black hole?", "How do I write a good cover letter?", "What makes music sound happy or sad?",
                 "How do vaccines work?", "What is the best way to learn a new language?", "How are rainbows formed?",
                 "What should I know before adopting a dog?"]
    return questions[:count]


def write_workload():
    os.makedirs(os.path.dirname(workload_path), exist_ok=True)
    with open(workload_path, "w") as f:
        for kind, prompts in [("code", code_prompts(args.per_kind)), ("quote", quote_prompts(args.per_kind)),
                              ("prose", prose_prompts(args.per_kind)), ("chat", chat_prompts(args.per_kind))]:
            for prompt in prompts:
                f.write(json.dumps({"kind": kind, "prompt": prompt}) + "\n")
    print("wrote", workload_path)


def load_workload():
    items = [json.loads(line) for line in open(workload_path) if line.strip()]
    if args.kinds:
        keep = args.kinds.split(",")
        items = [i for i in items if i["kind"] in keep]
    if args.limit > 0:
        seen = {}
        kept = []
        for i in items:
            seen[i["kind"]] = seen.get(i["kind"], 0) + 1
            if seen[i["kind"]] <= args.limit:
                kept.append(i)
        items = kept
    return items


def swift_unescape(text):
    """The body of a Swift debugDescription string."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n == "u" and text[i + 2:i + 3] == "{":
                end = text.index("}", i)
                out.append(chr(int(text[i + 3:end], 16)))
                i = end + 1
                continue
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def rendered(prompt):
    """The prompt as DwarfStar renders it with the model's chat template (text, special tokens as text)."""
    r = subprocess.run([args.bin, "run", "-m", args.model, "--verbose-prompt", "-n", "1", "--temp", "0", "-t", args.threads,
                        "-c", "8192", "-p", prompt], capture_output=True, text=True)
    line = next(l for l in r.stderr.splitlines() if l.startswith("prompt ("))
    text = swift_unescape(line[line.index(": \"") + 3:-1])
    # llama-lookup adds the BOS token itself (add_special): drop the one the template wrote.
    return text[len("<bos>"):] if text.startswith("<bos>") else text


def model_path():
    r = subprocess.run([args.bin, "list"], capture_output=True, text=True)
    folder = r.stdout.splitlines()[0].split(": ", 1)[1]
    files = {"smollm2": "smollm2-135m-instruct-q4_1.gguf", "gemma3-270m": "gemma-3-270m-q4_k_m.gguf"}
    return args.model if args.model.endswith(".gguf") else os.path.join(folder, files[args.model])


def lookup(text, draft):
    # The rendered text starts with BOS where the template writes one; llama-lookup adds its own.
    cmd = [args.llama_lookup, "-m", model_path(), "-p", text, "-n", str(args.n), "-t", args.threads, "--temp", "0",
           "-c", "8192", "-b", "8192", "--spec-draft-n-max", str(draft)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"decoded\s+(\d+) tokens in\s+([\d.]+) seconds", r.stderr)
    if r.returncode != 0 or not m:
        sys.exit("llama-lookup failed: " + r.stderr[-2000:])
    d = re.search(r"n_drafted\s+=\s+(\d+)", r.stderr)
    a = re.search(r"n_accept\s+=\s+(\d+)", r.stderr)
    return int(m.group(1)), float(m.group(2)), int(d.group(1)) if d else 0, int(a.group(1)) if a else 0


if args.write_workload:
    write_workload()
    sys.exit(0)

items = load_workload()
kinds = []
for i in items:
    if i["kind"] not in kinds:
        kinds.append(i["kind"])
sub = os.path.join("/tmp", "spec-bench-workload.jsonl")
with open(sub, "w") as f:
    for i in items:
        f.write(json.dumps(i) + "\n")
print("## DwarfStar (%s, %s threads, %d tokens, greedy)\n" % (args.model, args.threads, args.n))
sys.stdout.flush()
r = subprocess.run([args.bin, "bench", "-m", args.model, "-t", args.threads, "-n", str(args.n), "-r", str(args.r),
                    "--spec", "ngram", "--draft-max", str(args.draft_max), "--spec-prompts", sub],
                   stdout=subprocess.PIPE, text=True)
print(r.stdout)
if r.returncode != 0:
    sys.exit("dwarfstar bench --spec failed")

if args.llama_lookup:
    print("## llama.cpp llama-lookup (same file, prompts rendered by DwarfStar's template)\n")
    print("| kind | prompts | plain tok/s | lookup tok/s | ratio | drafted | accepted |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind in kinds:
        totals = {0: [0, 0.0], 1: [0, 0.0]}
        drafted = accepted = 0
        prompts = [i["prompt"] for i in items if i["kind"] == kind]
        for n, prompt in enumerate(prompts):
            text = rendered(prompt)
            order = (0, args.draft_max) if n % 2 == 0 else (args.draft_max, 0)
            for draft in order:
                tokens, seconds, d, a = lookup(text, draft)
                key = 1 if draft else 0
                totals[key][0] += tokens
                totals[key][1] += seconds
                if draft:
                    drafted += d
                    accepted += a
        plain = totals[0][0] / totals[0][1]
        spec = totals[1][0] / totals[1][1]
        print("| %s | %d | %.1f | %.1f | %.2f× | %d | %d |" % (kind, len(prompts), plain, spec, spec / plain, drafted, accepted))
        sys.stdout.flush()
