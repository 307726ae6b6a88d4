#!/usr/bin/env python3
"""Decode speed of a MoE model under --ram-budget: resident vs streamed, prefetch on/off, O_DIRECT vs
buffered reads, against the storage read speed `dwarfstar plan` measures.

Usage: bench/memory-tiers.py MODEL.gguf [--budgets "2G 1500M"] [-n 16] [-r 3] [--threads 2]
The page cache is emptied before every run when this runs as root (cold-disk numbers); otherwise the
runs say they were warm. Prints a Markdown table.
"""
import argparse, json, os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DS = os.path.join(ROOT, ".build", "release", "dwarfstar")


def drop_caches():
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def bench(model, n, r, threads, budget, env):
    cold = drop_caches()
    args = [DS, "bench", "-m", model, "-p", "0", "-n", str(n), "-r", str(r), "-t", str(threads), "-o", "json", "--no-membw"]
    if budget:
        args += ["--ram-budget", budget]
    p = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **env})
    if p.returncode != 0:
        sys.exit(f"dwarfstar bench failed: {p.stderr}")
    sample = json.loads(p.stdout)[0]
    row = {"tps": sample["avg_ts"], "cold": cold}
    m = re.search(r"experts: ([\d.]+)% hits, (\d+) prefetched \((\d+) unused\), ([\d.]+) MiB read \((\w+)\), ([\d.]+) s waiting", p.stderr)
    if m:
        tokens = (r + 1) * n   # the warm-up run reads too
        row.update(hits=float(m[1]), prefetched=int(m[2]), mib_per_token=float(m[4]) / tokens, mode=m[5], wait=float(m[6]))
    return row


def storage_bandwidth(model, budget, mode):
    p = subprocess.run([DS, "plan", "-m", model, "--ram-budget", budget], capture_output=True, text=True,
                       env={**os.environ, "DS_EXPERT_IO": mode})
    m = re.search(r"storage read ([\d.]+) GB/s", p.stdout)
    return float(m[1]) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--budgets", default="2G 1500M")
    ap.add_argument("-n", type=int, default=16)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    budgets = a.budgets.split()
    bw = {mode: storage_bandwidth(a.model, budgets[-1], mode) for mode in ("direct", "buffered")}
    print(f"storage read (plan's probe, expert-sized reads, 4 in flight): O_DIRECT {bw['direct']} GB/s, buffered {bw['buffered']} GB/s\n")
    print("| budget | reads | prefetch | decode t/s | expert hits | MiB read / token | s waiting for reads | storage read rate | % of the SSD-read bound |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    row = bench(a.model, a.n, a.r, a.threads, None, {})
    print(f"| none (all mapped{', cold' if row['cold'] else ''}) | mmap | – | {row['tps']:.2f} | – | – | – | – | – |")
    for budget in budgets:
        for mode, prefetch in (("direct", "1"), ("direct", "0"), ("buffered", "1")):
            row = bench(a.model, a.n, a.r, a.threads, budget, {"DS_EXPERT_IO": mode, "DS_EXPERT_PREFETCH": prefetch})
            rate = row["mib_per_token"] * 1.048576e-3 * row["tps"]   # GB/s
            bound = bw[mode] / (row["mib_per_token"] * 1.048576e-3) if row["mib_per_token"] > 0 else float("inf")
            print(f"| {budget} | {row['mode']} | {'on' if prefetch == '1' else 'off'} | {row['tps']:.2f} | {row['hits']:.1f}% | "
                  f"{row['mib_per_token']:.0f} | {row['wait']:.2f} | {rate:.2f} GB/s | {100 * row['tps'] / bound:.0f}% |")


if __name__ == "__main__":
    main()
