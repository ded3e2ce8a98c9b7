#!/usr/bin/env bash
# Quick start: install, build, compile the default model (bitnet-brown-23m, a small BitNet b1.58 trained on
# the Brown corpus, committed in models/) for this CPU, generate a sentence and measure its held-out
# perplexity. MODEL=/path/to/ggml-model-i2_s.gguf uses another model (then no perplexity is run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
DEFAULT=models/bitnet-brown-23m-i2_s.gguf
MODEL="${MODEL:-$DEFAULT}"
BUNDLE="build/$(basename "${MODEL%.gguf}").bundle"
./build/tools/bitnetc compile "$MODEL" -o "$BUNDLE"
./build/tools/bitnet-run "$BUNDLE" -p "${PROMPT:-She looked at the}" -n "${N:-40}" --seed "${SEED:-5}"
if [ "$MODEL" = "$DEFAULT" ]; then
  ./build/tools/bitnet-run "$BUNDLE" --perplexity -f models/brown-heldout.txt -c 256
fi
