"""Medians and ratios (DwarfStar / llama.cpp) from compare-llamacpp.sh samples; Markdown table + SVG chart.
Usage: python3 bench/report.py SAMPLES.csv OUT_PREFIX   (writes OUT_PREFIX.md and OUT_PREFIX.svg)"""
import csv
import statistics
import sys
from collections import defaultdict

samples = defaultdict(list)
with open(sys.argv[1]) as f:
    for row in csv.DictReader(f):
        samples[(row["model"], int(row["threads"]), row["test"], row["engine"])].append(float(row["tokens_per_second"]))

rows = []
for (model, threads, test) in sorted({k[:3] for k in samples}):
    ds = samples.get((model, threads, test, "dwarfstar"), [])
    lc = samples.get((model, threads, test, "llama.cpp"), [])
    if not ds or not lc:
        continue
    mds, mlc = statistics.median(ds), statistics.median(lc)
    rows.append((model, threads, test, mds, mlc, mds / mlc, len(ds)))

lines = ["| model | threads | test | DwarfStar t/s (median) | llama.cpp t/s (median) | ratio | samples |",
         "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
for model, threads, test, mds, mlc, ratio, n in rows:
    lines.append(f"| {model} | {threads} | {test} | {mds:.1f} | {mlc:.1f} | **{ratio:.2f}×** | {n} |")
# Before/after a change (DS_BASELINE): this build against the baseline build, same rounds.
baseline_rows = []
for (model, threads, test) in sorted({k[:3] for k in samples}):
    ds = samples.get((model, threads, test, "dwarfstar"), [])
    base = samples.get((model, threads, test, "dwarfstar-baseline"), [])
    if ds and base:
        mds, mbase = statistics.median(ds), statistics.median(base)
        baseline_rows.append(f"| {model} | {threads} | {test} | {mds:.1f} | {mbase:.1f} | **{mds / mbase:.2f}×** | {len(ds)} |")
if baseline_rows:
    lines += ["", "| model | threads | test | this build t/s (median) | baseline t/s (median) | now ÷ baseline | samples |",
              "| --- | ---: | --- | ---: | ---: | ---: | ---: |"] + baseline_rows
open(sys.argv[2] + ".md", "w").write("\n".join(lines) + "\n")

# SVG: one bar per (model, threads, test): ratio, with a line at 1.0.
width, bar, gap, top, left = 760, 22, 8, 30, 260
height = top + len(rows) * (bar + gap) + 40
scale = 400 / max([2.0] + [r[5] for r in rows])
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       f'<text x="10" y="18" font-size="14">DwarfStar / llama.cpp speed ratio (median of samples, same GGUF, same threads)</text>']
for i, (model, threads, test, mds, mlc, ratio, n) in enumerate(rows):
    y = top + i * (bar + gap)
    color = "#2a9d8f" if ratio >= 1 else "#e76f51"
    svg.append(f'<text x="10" y="{y + 15}">{model} t={threads} {test}</text>')
    svg.append(f'<rect x="{left}" y="{y}" width="{ratio * scale:.1f}" height="{bar}" fill="{color}"/>')
    svg.append(f'<text x="{left + ratio * scale + 6:.1f}" y="{y + 15}">{ratio:.2f}× ({mds:.0f} vs {mlc:.0f} t/s)</text>')
x1 = left + scale
svg.append(f'<line x1="{x1:.1f}" y1="{top - 5}" x2="{x1:.1f}" y2="{height - 30}" stroke="#333" stroke-dasharray="4 3"/>')
svg.append(f'<text x="{x1 - 10:.1f}" y="{height - 15}">1.0</text>')
svg.append("</svg>")
open(sys.argv[2] + ".svg", "w").write("\n".join(svg) + "\n")
