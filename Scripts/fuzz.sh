#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (AddressSanitizer + coverage) and runs each for a bounded time
# from its seed corpus. Fails (exit 1) when a target crashes, leaks, times out or breaks an invariant;
# prints executions, speed and corpus size per target. See docs/reliability.md, "Fuzzing".
#
#   Scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]
#
# Targets: GGUF TokenizerBPE TokenizerSPM ChatTemplate JSONSchema Server (default: all), 30 s each.
# Environment:
#   DS_FUZZ_WORK=DIR      where corpora, logs and crash files go (default Fuzz/.work; each run starts
#                         from the committed seeds, DS_FUZZ_KEEP=1 keeps growing the corpus found there)
#   DS_FUZZ_SKIP_BUILD=1  use the binaries already built
#   DS_FUZZ_ARGS="..."    more libFuzzer options (e.g. "-jobs=2 -workers=2", "-fork=2 -ignore_crashes=1")
#   DS_FUZZ_REAL_MODELS=0 do not add the real SmolLM2 / Gemma 3 vocabularies to the tokenizer targets
#                         (used when found in $DWARFSTAR_MODELS or ~/.dwarfstar/models)
# Reproduce a crash: Fuzz/.build/release/Fuzz<Target> CRASH_FILE
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PATH="/opt/swift/usr/bin:$PATH"
# Let libFuzzer see the crash (the Swift runtime's backtracer would otherwise take the signal first).
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"

SECONDS_PER_TARGET=${1:-30}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(GGUF TokenizerBPE TokenizerSPM ChatTemplate JSONSchema Server)
WORK=${DS_FUZZ_WORK:-$ROOT/Fuzz/.work}
BIN=$ROOT/Fuzz/.build/release

if [ "${DS_FUZZ_SKIP_BUILD:-0}" != 1 ]; then
    start=$(date +%s)
    echo "== building the fuzz targets (release, -sanitize=fuzzer,address)"
    (cd Fuzz && nice -n 10 swift build -c release --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address) \
        > "$ROOT/Fuzz/.build-fuzz.log" 2>&1 || { tail -40 "$ROOT/Fuzz/.build-fuzz.log"; echo "fuzz build failed"; exit 1; }
    echo "   built in $(( $(date +%s) - start )) s"
fi

MODELS=${DWARFSTAR_MODELS:-$HOME/.dwarfstar/models}
if [ "${DS_FUZZ_REAL_MODELS:-1}" != 0 ]; then
    [ -f "$MODELS/smollm2-135m-instruct-q4_1.gguf" ] && export DS_FUZZ_BPE_MODEL="$MODELS/smollm2-135m-instruct-q4_1.gguf"
    [ -f "$MODELS/gemma-3-270m-q4_k_m.gguf" ] && export DS_FUZZ_SPM_MODEL="$MODELS/gemma-3-270m-q4_k_m.gguf"
fi

mkdir -p "$WORK"
failed=()
summary=()
for target in "${TARGETS[@]}"; do
    exe="$BIN/Fuzz$target"
    [ -x "$exe" ] || { echo "no such target: $target ($exe)"; failed+=("$target"); continue; }
    dir="$WORK/$target"
    [ "${DS_FUZZ_KEEP:-0}" = 1 ] || rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    seeds=("$ROOT/Fuzz/Corpus/$target")
    extra=()
    if [ "$target" = ChatTemplate ]; then
        seeds+=("$ROOT/Tests/ChatTemplateTests/Fixtures/templates")
        # Leak checks are on (the macro-scope cycle it found is fixed); DS_FUZZ_CHATTEMPLATE_LEAKS=0 turns
        # them off.
        [ "${DS_FUZZ_CHATTEMPLATE_LEAKS:-1}" = 1 ] || extra+=(-detect_leaks=0)
    fi
    asan=$ASAN_OPTIONS
    [[ " ${extra[*]} " == *" -detect_leaks=0 "* ]] && asan="$asan:detect_leaks=0"
    echo "== $target: $SECONDS_PER_TARGET s"
    # shellcheck disable=SC2086
    ASAN_OPTIONS=$asan nice -n 10 "$exe" "$dir/corpus" "${seeds[@]}" -max_total_time="$SECONDS_PER_TARGET" -timeout=20 -rss_limit_mb=4096 \
        -artifact_prefix="$dir/artifacts/" -print_final_stats=1 "${extra[@]}" ${DS_FUZZ_ARGS:-} > "$dir/log.txt" 2>&1
    status=$?
    if grep -q '^stat::number_of_executed_units' "$dir/log.txt"; then
        runs=$(awk '/^stat::number_of_executed_units/ {s += $2} END {print s + 0}' "$dir/log.txt")
        speed=$(awk '/^stat::average_exec_per_sec/ {s += $2} END {print s + 0}' "$dir/log.txt")
    else   # -fork=N: the parent's last progress line "#RUNS: cov: ... time: SECONDSs ..."
        last=$(grep -E '^#[0-9]+: ' "$dir/log.txt" | tail -1)
        runs=$(sed -E 's/^#([0-9]+):.*/\1/' <<< "${last:-#0: time: 1s}")
        elapsed=$(sed -E 's/.* time: ([0-9]+)s.*/\1/' <<< "${last:-#0: time: 1s}")
        speed=$(( runs / (elapsed > 0 ? elapsed : 1) ))
    fi
    files=$(find "$dir/corpus" -type f | wc -l)
    bytes=$(du -sb "$dir/corpus" | cut -f1)
    crashes=$(find "$dir/artifacts" -type f | wc -l)
    line=$(printf '%-13s %10s runs %7s exec/s  corpus %5s files %8s bytes  %s' "$target" "$runs" "$speed" "$files" "$bytes" \
        "$([ $status -eq 0 ] && [ "$crashes" -eq 0 ] && echo ok || echo "FAILED (exit $status, $crashes artifact(s) in $dir/artifacts)")")
    echo "   $line"
    summary+=("$line")
    if [ $status -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed+=("$target")
        grep -m1 -B2 -A25 'ERROR: \|FUZZ INVARIANT\|deadly signal\|Fatal error' "$dir/log.txt" | head -60
    fi
done

echo "== fuzzing summary"
printf '   %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzzing passed"
