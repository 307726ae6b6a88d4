#!/usr/bin/env bash
# Side-by-side speed of DwarfStar and llama.cpp on the same GGUF files, same thread counts, in one run.
#
# llama.cpp is obtained the way a user here can: the source package of llama-cpp-python from PyPI
# (pip download --no-binary), which vendors llama.cpp; built CPU-only, Release, native, llama-bench only.
# Both engines are run alternately (A B A B …), each run `-r 1`, and the medians of the samples are
# compared: ratio = DwarfStar / llama.cpp (> 1 means DwarfStar is faster).
#
# Usage: bench/compare-llamacpp.sh [-m "smollm2 gemma3-270m|PATH ..."] [-t "1 2"] [-p 512] [-n 128] [-k 5]
#        DS_ARGS="--ram-budget 16G" passes extra options to dwarfstar bench; LLAMA_ARGS to llama-bench;
#        DROP_CACHES=1 empties the page cache before every run (needs root: cold-disk numbers).
#        DS_BASELINE=/path/to/older/dwarfstar adds a third engine to every round (before/after a change:
#        its samples are "dwarfstar-baseline" and the report gets a now ÷ baseline table).
# Output: a Markdown table on stdout, raw samples in bench/results/<stamp>.csv, an SVG chart
# bench/results/<stamp>.svg (and bench/results/latest.{csv,svg,md}).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

MODELS="smollm2 gemma3-270m"; THREADS="1 2"; NP=512; NG=128; K=5
while getopts "m:t:p:n:k:" opt; do
  case "$opt" in
    m) MODELS="$OPTARG" ;; t) THREADS="$OPTARG" ;; p) NP="$OPTARG" ;; n) NG="$OPTARG" ;; k) K="$OPTARG" ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done

CACHE="${DWARFSTAR_CACHE:-$HOME/.cache/dwarfstar}/llamacpp"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
say() { printf '[compare] %s\n' "$*" >&2; }

build_llamacpp() {
  local bench="$CACHE/build/bin/llama-bench"
  if [ -x "$bench" ]; then echo "$bench"; return; fi
  mkdir -p "$CACHE"
  python3 -m venv "$CACHE/venv" >&2
  # scikit-build-core: pip reads the sdist's metadata through its build backend (no build isolation).
  "$CACHE/venv/bin/pip" install -q --disable-pip-version-check cmake ninja scikit-build-core >&2 || exit 1
  if ! ls "$CACHE"/llama_cpp_python-*.tar.gz >/dev/null 2>&1; then
    say "fetching llama-cpp-python $LLAMA_CPP_PYTHON_VERSION source package"
    "$CACHE/venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
      --no-build-isolation -d "$CACHE" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >&2 || exit 1
  fi
  local sdist; sdist="$(ls "$CACHE"/llama_cpp_python-*.tar.gz | head -1)"
  local top; top="$(basename "$sdist" .tar.gz)"
  rm -rf "$CACHE/src"; mkdir -p "$CACHE/src"
  tar -xzf "$sdist" -C "$CACHE/src" "$top/vendor/llama.cpp" || exit 1
  say "building llama-bench (CPU, Release, native); a few minutes on 2 cores"
  PATH="$CACHE/venv/bin:$PATH" cmake -S "$CACHE/src/$top/vendor/llama.cpp" -B "$CACHE/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_CPU=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF \
    -DGGML_VULKAN=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DBUILD_SHARED_LIBS=OFF >&2 || exit 1
  PATH="$CACHE/venv/bin:$PATH" cmake --build "$CACHE/build" --target llama-bench -j "$(nproc)" >&2 || exit 1
  echo "$bench"
}

drop_caches() {
  if [ -n "${DROP_CACHES:-}" ]; then sync; echo 3 > /proc/sys/vm/drop_caches || { say "cannot drop the page cache (not root?)"; exit 1; }; fi
}
LLAMA_BENCH="${LLAMA_BENCH:-$(build_llamacpp)}" || { say "could not build llama-bench"; exit 1; }
say "llama-bench: $LLAMA_BENCH"
say "building dwarfstar (release)"
swift build -c release --product dwarfstar >&2
DS="$ROOT/.build/release/dwarfstar"

mkdir -p bench/results
STAMP="$(date -u +%Y%m%d-%H%M%S)"
CSV="bench/results/$STAMP.csv"
echo "engine,model,threads,test,tokens_per_second" > "$CSV"

for model in $MODELS; do
  if [ -f "$model" ]; then path="$model"; else path="$("$DS" pull "$model" | tail -1)"; fi
  for t in $THREADS; do
    for i in $(seq 1 "$K"); do
      say "$model t=$t round $i/$K"
      drop_caches
      "$LLAMA_BENCH" -m "$path" -p "$NP" -n "$NG" -r 1 -t "$t" -o json ${LLAMA_ARGS:-} 2>/dev/null \
        | python3 bench/samples.py llama.cpp "$model" "$t" >> "$CSV"
      drop_caches
      "$DS" bench -m "$path" -p "$NP" -n "$NG" -r 1 -t "$t" -o json --no-membw ${DS_ARGS:-} 2>/dev/null \
        | python3 bench/samples.py dwarfstar "$model" "$t" >> "$CSV"
      if [ -n "${DS_BASELINE:-}" ]; then
        drop_caches
        "$DS_BASELINE" bench -m "$path" -p "$NP" -n "$NG" -r 1 -t "$t" -o json --no-membw ${DS_ARGS:-} 2>/dev/null \
          | python3 bench/samples.py dwarfstar-baseline "$model" "$t" >> "$CSV"
      fi
    done
  done
done

python3 bench/report.py "$CSV" "bench/results/$STAMP"
cp "$CSV" bench/results/latest.csv
cp "bench/results/$STAMP.svg" bench/results/latest.svg
cp "bench/results/$STAMP.md" bench/results/latest.md
cat "bench/results/$STAMP.md"
