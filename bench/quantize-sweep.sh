#!/usr/bin/env bash
# File size against quality for the adaptive allocation: after bench/quantize-kld.sh has made WORKDIR
# (reference, imatrix, base.kld, sensitivity.json), quantize at several bits per weight and score each
# file: size relative to the F16 reference, PPL ratio and KLD (docs/quantization.md, "Size against quality").
#   bench/quantize-sweep.sh WORKDIR "3.0 3.5 4.0 4.5 5.0 6.0"
set -euo pipefail
work="$1"; bpws="${2:-3.0 3.5 4.0 4.5 5.0 6.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
ds="$root/.build/release/dwarfstar"; threads="${THREADS:-2}"
cd "$work"
ref=$(stat -c %s ref-f16.gguf)
printf '%-6s %12s %8s  %s\n' bpw bytes "of F16" "PPL ratio, KLD"
for b in $bpws; do
  if ! "$ds" quantize ref-f16.gguf "sweep-$b.gguf" --target-bpw "$b" --imatrix imatrix.gguf --sensitivity sensitivity.json -t "$threads" >/dev/null 2>"sweep-$b.err"; then
    printf '%-6s %s\n' "$b" "$(tail -1 "sweep-$b.err")"; continue
  fi
  size=$(stat -c %s "sweep-$b.gguf")
  line=$("$ds" kld -m "sweep-$b.gguf" --base base.kld -t "$threads" 2>/dev/null | grep -E "PPL\(Q\)/|Mean    KLD" | tr -s ' ' | tr '\n' ' ')
  printf '%-6s %12s %7.1f%%  %s\n' "$b" "$size" "$(echo "100*$size/$ref" | bc -l)" "$line"
done
