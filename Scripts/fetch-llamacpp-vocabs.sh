#!/usr/bin/env bash
# The vocabulary-only GGUF files llama.cpp's source ships (models/ggml-vocab-*.gguf), with their test
# texts (.inp) and the token ids Hugging Face tokenizers gave for them (.out), taken from the
# llama-cpp-python source package on PyPI (which vendors llama.cpp). LlamaCppVocabTests reads them.
#
#   Scripts/fetch-llamacpp-vocabs.sh [OUT_DIR]     # default .build/llamacpp-vocabs
#
# Needs python3 with pip (the package index reachable) and tar.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-.build/llamacpp-vocabs}"
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
if [ -f "$OUT/.complete-$VERSION" ]; then exit 0; fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m pip download --disable-pip-version-check -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$WORK"
SDIST="$(ls "$WORK"/llama_cpp_python-*.tar.gz)"
mkdir -p "$OUT"
tar -xzf "$SDIST" -C "$WORK" --wildcards "*/vendor/llama.cpp/models/ggml-vocab-*"
cp "$WORK"/llama_cpp_python-*/vendor/llama.cpp/models/ggml-vocab-* "$OUT"/
touch "$OUT/.complete-$VERSION"
echo "llama.cpp vocabularies in $OUT: $(ls "$OUT"/*.gguf | wc -l) files" >&2
