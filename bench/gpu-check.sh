#!/usr/bin/env bash
# The Vulkan backend on a real GPU (issue 21), in one run on the device machine, which has the NVIDIA driver
# but no Swift. What ran and what could not goes to docs/gpu.md.
#
# Prepare here (the folder bench/gpu is ignored by git; carry it):
#   swift build -c release --static-swift-stdlib --product dwarfstar --scratch-path .build-static
#   mkdir -p bench/gpu && cp .build-static/release/dwarfstar bench/gpu/ && strip bench/gpu/dwarfstar && gzip -9 bench/gpu/dwarfstar
#   (static and stripped it is about 77 MB, more than a device call carries (64 MiB); gzipped about 29 MB)
#   bash bench/gpu-check.sh --fetch-loader    # Debian's libvulkan1 into bench/gpu/lib, in case the machine has no loader
#   optional: llama.cpp's llama-bench built with -DGGML_VULKAN=ON / -DGGML_CUDA=ON as bench/gpu/llama-bench-vulkan,
#   bench/gpu/llama-bench-cuda (with their shared libraries beside them) for the side-by-side rows.
# Run there:   bash bench/gpu-check.sh [OUT]      (OUT: $OUT, else bench/gpu/out)
#
# Steps: the Vulkan loader and NVIDIA's ICD (found, or made from the driver's libGLX_nvidia); dwarfstar devices
# --check (every product kernel against the scalar reference, read speed); every tiny fixture's logits through
# --backend vulkan against the transformers golden (1e-3); pp512/tg128 of synthetic dense and MoE models on
# the CPU, all on the GPU and hybrid (GPU budget half the MoE file), beside llama.cpp where carried.
set -uo pipefail
cd "$(dirname "$0")/.."
GPU=bench/gpu

if [ "${1:-}" = "--fetch-loader" ]; then
  mkdir -p "$GPU/lib" && work=$(mktemp -d)
  (cd "$work" && apt-get download libvulkan1 >/dev/null) || { echo "apt-get download libvulkan1 failed" >&2; exit 1; }
  dpkg-deb -x "$work"/libvulkan1_*.deb "$work/x"
  cp -L "$work"/x/usr/lib/*/libvulkan.so.1 "$GPU/lib/" && echo "loader: $GPU/lib/libvulkan.so.1"
  rm -rf "$work"
  exit 0
fi

OUT=${1:-${OUT:-$GPU/out}}
mkdir -p "$OUT"
LOG="$OUT/gpu-check.txt"
exec > >(tee "$LOG") 2>&1
DS="$GPU/dwarfstar"
if [ ! -x "$DS" ] && [ -f "$DS.gz" ]; then gzip -dc "$DS.gz" > "$DS" && chmod +x "$DS"; fi
[ -x "$DS" ] || { echo "no $DS: build and copy it first (see the top of this script)"; exit 1; }
say() { printf '\n== %s\n' "$*"; }

say "machine"
nvidia-smi -L 2>&1 || echo "nvidia-smi: not found"
nproc; free -g | head -2

say "Vulkan loader and ICD"
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
  if [ -f "$GPU/lib/libvulkan.so.1" ]; then
    export LD_LIBRARY_PATH="$PWD/$GPU/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "loader: the carried $GPU/lib/libvulkan.so.1 (the machine has none)"
  else
    echo "loader: none on the machine and none carried (bench/gpu-check.sh --fetch-loader)"
  fi
else
  echo "loader: $(ldconfig -p | grep 'libvulkan.so.1' | head -1)"
fi
icd=$(ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json 2>/dev/null | head -1)
if [ -z "$icd" ]; then
  glx=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia.so.0/ {print $NF; exit}')
  if [ -n "$glx" ]; then
    icd="$OUT/nvidia_icd.json"
    printf '{"file_format_version":"1.0.1","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$glx" > "$icd"
    echo "ICD: none installed; made $icd for $glx"
  else
    echo "ICD: no nvidia_icd.json and no libGLX_nvidia.so.0: the driver has no Vulkan part here"
  fi
else
  echo "ICD: $icd"
fi
[ -n "$icd" ] && export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"

say "dwarfstar devices --check"
"$DS" devices --check
checked=$?

say "fixtures through --backend vulkan against the transformers golden"
F=Tests/ModelsTests/Fixtures
for arch in llama qwen2 qwen3 gemma3 qwen3moe glm4moe llama4 deepseekv3; do
  ids=$(python3 -c "import json; print(','.join(map(str, json.load(open('$F/$arch.golden.json'))['token_ids'])))")
  if "$DS" logits -m "$F/$arch.f32.gguf" --tokens "$ids" --backend vulkan --out "$OUT/$arch.logits.json" 2>"$OUT/$arch.err"; then
    python3 - "$F/$arch.golden.json" "$OUT/$arch.logits.json" "$arch" <<'PY'
import json, sys
golden, got, arch = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
worst = max(abs(a - b) for ra, rb in zip(got["logits"], golden["logits"]) for a, b in zip(ra, rb))
print(f"{arch:11s} max |dlogit| {worst:.2e} {'ok' if worst <= 1e-3 else 'OFF'}")
PY
  else
    echo "$arch: failed: $(tail -1 "$OUT/$arch.err")"
  fi
done

say "speed: synthetic models, pp512 / tg128"
# GPU_CHECK_SMALL=1: small models and short runs (a dry run of this script on lavapipe).
M="$OUT/models"; mkdir -p "$M"
if [ "${GPU_CHECK_SMALL:-0}" = 1 ]; then dense=(--hidden 256 --layers 2 --ffn 512); moe=(--size 300M); pp=16; tg=4
else dense=(--hidden 4096 --layers 16 --ffn 11008); moe=(--size 8G); pp=512; tg=128; fi
[ -f "$M/llama-q4k.gguf" ] || "$DS" synth --arch llama "${dense[@]}" --type q4_K -o "$M/llama-q4k.gguf" >/dev/null
[ -f "$M/moe.gguf" ] || "$DS" synth --arch qwen35moe "${moe[@]}" -o "$M/moe.gguf" >/dev/null
moe_half=$(( $(stat -c %s "$M/moe.gguf") / 2 / 1048576 ))M
bench() { echo "-- $*"; "$DS" bench -p "$pp" -n "$tg" -r 3 --no-membw "$@" 2>&1; }
for model in "$M/llama-q4k.gguf" "$M/moe.gguf"; do
  bench -m "$model" --backend cpu
  bench -m "$model" --backend vulkan
done
bench -m "$M/moe.gguf" --backend vulkan --gpu-budget "$moe_half"
for side in vulkan cuda; do
  lb="$GPU/llama-bench-$side"
  if [ -x "$lb" ]; then
    for model in "$M/llama-q4k.gguf" "$M/moe.gguf"; do echo "-- llama.cpp $side $model"; LD_LIBRARY_PATH="$GPU:${LD_LIBRARY_PATH:-}" "$lb" -m "$model" -p "$pp" -n "$tg" -r 3 -ngl 99; done
  else
    echo "llama.cpp $side: not carried ($lb)"
  fi
done

say "done: kernels $([ $checked -eq 0 ] && echo ok || echo OFF); log $LOG"
