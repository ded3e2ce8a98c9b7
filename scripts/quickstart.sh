#!/usr/bin/env bash
# Quick start: install, build, make the default model, compile it and generate a few tokens.
# MODEL=/path/to/ggml-model-i2_s.gguf uses a real model instead of the synthesizer's small one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
mkdir -p models
MODEL="${MODEL:-}"
if [ -z "$MODEL" ]; then
  MODEL=models/tiny-i2_s.gguf
  [ -f "$MODEL" ] || ./build/tools/bitnetc synth --shape tiny --type i2_s --seed 1 -o "$MODEL"
fi
BUNDLE="models/$(basename "${MODEL%.gguf}").bundle"
./build/tools/bitnetc compile "$MODEL" -o "$BUNDLE"
./build/tools/bitnet-run "$BUNDLE" -p "${PROMPT:-The capital of France is}" -n "${N:-32}" --seed 1
