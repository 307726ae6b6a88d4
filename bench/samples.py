"""llama-bench-style JSON (llama-bench -o json, dwarfstar bench -o json) on stdin -> CSV sample rows.
Usage: ... | python3 bench/samples.py ENGINE MODEL THREADS"""
import json
import sys

engine, model, threads = sys.argv[1:4]
for row in json.load(sys.stdin):
    test = "pp%d" % row["n_prompt"] if row["n_gen"] == 0 else "tg%d" % row["n_gen"]
    print("%s,%s,%s,%s,%s" % (engine, model, threads, test, row["avg_ts"]))
