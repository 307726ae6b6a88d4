#!/usr/bin/env bash
# The scale case of docs/distributed.md: a synthetic DeepSeek V3-shaped MoE (3.3 GB, 2.8 GB of it routed
# experts) that must stream its experts under --ram-budget 2G on one process, against the same model with
# its experts shared out over 3 ranks of 2G each (--experts-parallel), which then hold all of them in RAM.
# Both score the same text one token per forward pass (decode-shaped steps over real text, so the routing
# varies as a real model's does) and then decode greedily; each rank reports its peak RSS and the bytes it
# sent. Ranks run on this machine (mpirun --oversubscribe): on a machine with fewer cores than ranks × -t
# the ranks wait on each other, so the speeds say how the link behaves, not what separate machines give.
#
#   bash bench/scale-case.sh            (DS_BIN: the binary, MODEL: where the synthetic file goes)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DS_BIN:-.build/release/dwarfstar}
MODEL=${MODEL:-/tmp/ds-scale-moe.gguf}
TEXT=${TEXT:-docs/performance.md}
BUDGET=${BUDGET:-2G}
MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np 3)
[ -f "$MODEL" ] || "$BIN" synth --arch deepseek2 -o "$MODEL" --hidden 2048 --layers 14 --experts 64 --experts-used 6 --expert-ffn 1024 --type q4_K
SCORE=(perplexity -m "$MODEL" --ram-budget "$BUDGET" -t 1 -f "$TEXT" -c 128 --chunks 2 -b 1)
DECODE=(run -m "$MODEL" --ram-budget "$BUDGET" -t 1 --temp 0 -n 64 --ignore-eos --raw -p "The history of the river valley begins with the first farmers.")
for round in 1 2; do
    echo "== round $round: one process, --ram-budget $BUDGET"
    rm -f "$MODEL.dsexperts"   # no popularity from earlier runs: every run starts cold
    /usr/bin/time -f "peak RSS %M KiB" "$BIN" "${SCORE[@]}" 2>&1 >/dev/null | grep -E "tokens/s|experts:|placement|peak RSS"
    echo "== round $round: 3 ranks, --ram-budget $BUDGET each, --experts-parallel"
    rm -f "$MODEL.dsexperts"
    "${MPIRUN[@]}" "$BIN" "${SCORE[@]}" --experts-parallel 2>&1 >/dev/null | grep -E "tokens/s|runs |placement|peak RSS"
done
echo "== decode, one process"
"$BIN" "${DECODE[@]}" 2>&1 >/dev/null | grep -E "generation"
echo "== decode, 3 ranks"
"${MPIRUN[@]}" "$BIN" "${DECODE[@]}" --experts-parallel 2>&1 >/dev/null | grep -E "generation|peak RSS"
