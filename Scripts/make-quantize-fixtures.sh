#!/usr/bin/env bash
# Regenerates Tests/QuantizationTests/Fixtures: what llama.cpp's own tools make from the tiny test
# models (Tests/ModelsTests/Fixtures), for the byte-equality tests of `dwarfstar quantize`:
#   *.imatrix.gguf  llama-imatrix over the calibration text (bench/data), chunks of 64 tokens
#   llamacpp-quantize.tsv  input, mix, imatrix (or -), size and SHA-256 of llama-quantize's output
# Needs the llama.cpp anchor built with llama-quantize and llama-imatrix:
#   LLAMA_BIN=/path/to/llama.cpp/build/bin Scripts/make-quantize-fixtures.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${LLAMA_BIN:-$HOME/.cache/dwarfstar/llamacpp/build/bin}"
models="$root/Tests/ModelsTests/Fixtures"
out="$root/Tests/QuantizationTests/Fixtures"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
head -c 20000 "$root/bench/data/calibration-kjv-genesis.txt" > "$tmp/calibration.txt"
for m in llama.f32 qwen3moe.f16 gemma3.f16; do
  (cd "$tmp" && "$bin/llama-imatrix" -m "$models/$m.gguf" -f calibration.txt -o "$out/$m.imatrix.gguf" -c 64 --chunks 8 -t 2 >log 2>&1) \
    || { cat "$tmp/log"; exit 1; }
done
{
  printf 'input\tmix\timatrix\tbytes\tsha256\n'
  while read -r m mix im; do
    # Run beside the imatrix so that quantize.imatrix.file holds its bare name.
    args=(); [ "$im" != - ] && args=(--imatrix "$im")
    (cd "$out" && "$bin/llama-quantize" "${args[@]}" "$models/$m.gguf" "$tmp/q.gguf" "$mix" 2 >"$tmp/log" 2>&1) || { cat "$tmp/log"; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$m.gguf" "$mix" "$im" "$(stat -c %s "$tmp/q.gguf")" "$(sha256sum "$tmp/q.gguf" | cut -d' ' -f1)"
  done <<'LIST'
llama.f32 Q4_K_M -
llama.f32 Q3_K_M -
llama.f32 Q8_0 -
llama.f32 F16 -
llama.f32 Q4_0 llama.f32.imatrix.gguf
llama.f32 Q5_K_M llama.f32.imatrix.gguf
qwen3moe.f16 Q4_K_M -
qwen3moe.f16 Q4_1 qwen3moe.f16.imatrix.gguf
qwen3moe.f16 IQ4_NL qwen3moe.f16.imatrix.gguf
qwen3moe.f16 Q2_K qwen3moe.f16.imatrix.gguf
gemma3.f16 Q4_K_M -
gemma3.f16 Q5_0 gemma3.f16.imatrix.gguf
gemma3.f16 IQ4_XS gemma3.f16.imatrix.gguf
LIST
} > "$out/llamacpp-quantize.tsv"
cat "$out/llamacpp-quantize.tsv"
