#!/usr/bin/env bash
# Adaptive quantization against llama-quantize's mixes at equal file size, scored by KL divergence on
# Pride and Prejudice against the F16 reference (docs/quantization.md, "Adaptive allocation").
#   bench/quantize-kld.sh MODEL_NAME WORKDIR [MIXES]
# MODEL_NAME: smollm2 or gemma3-270m (their F16 dequantizations are the references: no unquantized
# real model is available here). One importance matrix, made by llama-imatrix from the calibration text
# (KJV Genesis, bench/data), serves both tools. Needs the llama.cpp anchor's llama-quantize and
# llama-imatrix (LLAMA_BIN) and the evaluation text (EVAL_TEXT). GROUP_LAYERS, CAL_CHUNKS and TYPES set
# the allocation's layer groups, calibration chunks and candidate types.
set -euo pipefail
model="$1"; work="$2"; mixes="${3:-Q2_K Q3_K_M Q4_K_M IQ3_XXS}"
root="$(cd "$(dirname "$0")/.." && pwd)"
ds="$root/.build/release/dwarfstar"
bin="${LLAMA_BIN:-$HOME/.cache/dwarfstar/llamacpp/build/bin}"
eval_text="${EVAL_TEXT:-$root/Tests/EngineTests/Fixtures/pride-and-prejudice.txt}"
cal="$root/bench/data/calibration-kjv-genesis.txt"
threads="${THREADS:-2}"; eval_chunks="${EVAL_CHUNKS:-20}"; imatrix_chunks="${IMATRIX_CHUNKS:-40}"
group_layers="${GROUP_LAYERS:-3}"; cal_chunks="${CAL_CHUNKS:-2}"
types_args=(); [ -n "${TYPES:-}" ] && types_args=(--types "$TYPES")   # TYPES=Q5_0,Q8_0,…: the candidates
mkdir -p "$work"; cd "$work"
[ -f ref-f16.gguf ] || "$ds" convert "$model" ref-f16.gguf --type f16 -t "$threads" >/dev/null
[ -f imatrix.gguf ] || "$bin/llama-imatrix" -m ref-f16.gguf -f "$cal" -o imatrix.gguf -c 512 --chunks "$imatrix_chunks" -t "$threads" >imatrix.log 2>&1
[ -f base.kld ] || "$ds" kld -m ref-f16.gguf -f "$eval_text" -c 512 --chunks "$eval_chunks" -t "$threads" --save-base base.kld >/dev/null 2>&1
kld() { "$ds" kld -m "$1" --base base.kld -t "$threads" --json "$1.kld.json" 2>/dev/null | grep -E "Mean    KLD|PPL\(Q\)/" | tr -s ' ' | tr '\n' ' '; }
printf '%-8s %-10s %12s  %s\n' mix tool bytes "KLD and PPL ratio (vs F16)"
for mix in $mixes; do
  "$bin/llama-quantize" --imatrix imatrix.gguf ref-f16.gguf "llama-$mix.gguf" "$mix" "$threads" >"llama-$mix.log" 2>&1
  size=$(stat -c %s "llama-$mix.gguf")
  "$ds" quantize ref-f16.gguf "ds-$mix.gguf" --target-size "$size" --imatrix imatrix.gguf --calibration "$cal" \
      --calibration-chunks "$cal_chunks" --group-layers "$group_layers" "${types_args[@]}" --sensitivity sensitivity.json -t "$threads" >"ds-$mix.log" 2>"ds-$mix.err"
  printf '%-8s %-10s %12s  %s\n' "$mix" llama.cpp "$size" "$(kld "llama-$mix.gguf")"
  printf '%-8s %-10s %12s  %s %s\n' "$mix" dwarfstar "$(stat -c %s "ds-$mix.gguf")" "$(kld "ds-$mix.gguf")" "$(grep -o 'estimated ΔKLD [0-9.]*' "ds-$mix.err")"
done
