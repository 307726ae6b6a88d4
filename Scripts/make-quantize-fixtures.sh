#!/usr/bin/env bash
# Regenerates Tests/QuantizationTests/Fixtures: what llama.cpp's own tools make from the tiny test
# models (Tests/ModelsTests/Fixtures), for the byte-equality tests of `dwarfstar quantize`:
#   *.imatrix.gguf  llama-imatrix over the calibration text (bench/data), chunks of 64 tokens
#   llamacpp-quantize.tsv  input, mix, imatrix (or -), size and SHA-256 of llama-quantize's output
# and Tests/EngineTests/Fixtures/iquant, for the codebook i-quant mixes (the tiny models' 64-wide rows
# take no i-quant): a 256-wide synthetic Llama made by `dwarfstar synth` (its SHA-256 is recorded, so
# the test knows it rebuilt the same file), llama-imatrix's matrix for it, and llama-quantize's output
# under the IQ1/IQ2/IQ3 mixes:
#   synth.tsv       the synth arguments and the file's size and SHA-256
#   synth.imatrix.gguf, llamacpp-quantize.tsv  as above
# Needs the llama.cpp anchor built with llama-quantize and llama-imatrix, and a release build of dwarfstar:
#   LLAMA_BIN=/path/to/llama.cpp/build/bin Scripts/make-quantize-fixtures.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${LLAMA_BIN:-$HOME/.cache/dwarfstar/llamacpp/build/bin}"
models="$root/Tests/ModelsTests/Fixtures"
out="$root/Tests/QuantizationTests/Fixtures"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
head -c 20000 "$root/bench/data/calibration-kjv-genesis.txt" > "$tmp/calibration.txt"
if [ "${PART:-all}" != iquant ]; then   # PART=iquant remakes only the i-quant fixtures below
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
fi

# ---- The codebook i-quants on a 256-wide synthetic model ----
dwarfstar="${DWARFSTAR:-$root/.build/release/dwarfstar}"
iq="$root/Tests/EngineTests/Fixtures/iquant"
mkdir -p "$iq"
synth_args="--hidden 256 --layers 2 --heads 4 --kv-heads 1 --ffn 512 --type f16 --seed 7"
# shellcheck disable=SC2086
"$dwarfstar" synth $synth_args --tokenizer-from "$models/llama.f32.gguf" -o "$tmp/synth.gguf" >/dev/null 2>"$tmp/log" || { cat "$tmp/log"; exit 1; }
printf 'args\tbytes\tsha256\n%s\t%s\t%s\n' "$synth_args" "$(stat -c %s "$tmp/synth.gguf")" "$(sha256sum "$tmp/synth.gguf" | cut -d' ' -f1)" > "$iq/synth.tsv"
(cd "$tmp" && "$bin/llama-imatrix" -m synth.gguf -f calibration.txt -o "$iq/synth.imatrix.gguf" -c 64 --chunks 8 -t 2 >log 2>&1) \
  || { cat "$tmp/log"; exit 1; }
{
  printf 'mix\tbytes\tsha256\n'
  for mix in IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ3_XXS IQ3_XS IQ3_S IQ3_M; do
    (cd "$iq" && "$bin/llama-quantize" --imatrix synth.imatrix.gguf "$tmp/synth.gguf" "$tmp/q.gguf" "$mix" 2 >"$tmp/log" 2>&1) || { cat "$tmp/log"; exit 1; }
    printf '%s\t%s\t%s\n' "$mix" "$(stat -c %s "$tmp/q.gguf")" "$(sha256sum "$tmp/q.gguf" | cut -d' ' -f1)"
  done
} > "$iq/llamacpp-quantize.tsv"
cat "$iq/synth.tsv" "$iq/llamacpp-quantize.tsv"
